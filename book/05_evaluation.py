# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Evaluation: Table 2
#
# **The question.** Table 2 of the paper compares, for each kind of
# misclassification, how well each method's confidence separates the 2000
# in-distribution test examples from the 2000 examples of that kind: FPR at 95 %
# TPR (lower is better), AUROC, AUPR-In and AUPR-Out (higher is better), with
# "correct" as the positive class. Its claims (Section 3.3): Introspection-Net is
# best on BIM, FGSM and every OOD set in both experiments and close to perfect on
# OOD data; the three methods are close on errors; on CIFAR-10 the Softmax Baseline
# beats it on DeepFool.

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile names its network)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
n_boot: "int or None" = None  # bootstrap resamples for the 95% confidence intervals (None: the profile's)

# %% [markdown]
# ## Set-up

# %%
import time

from IPython.display import Markdown, display

from introspection import analysis, config, paper, pipeline, plots, runner

t0 = time.perf_counter()
cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, n_boot=n_boot,
)
run = pipeline.stages(cfg)  # each stage is computed or loaded when first read
cfg.table("evaluation")

# %% [markdown]
# ## Scores of the three methods on the test sets

# %%
table, scores = run.table2, run.scores
print(f"{len(table)} rows written to table2.csv in the results folder")

# %% [markdown]
# ## Table 2, side by side with the paper
#
# Each cell: our value with its bootstrap 95 % confidence interval, the paper's
# value in parentheses; the best method per dataset and metric in bold, as in the
# paper. In-distribution test images the classifier gets wrong count as negatives
# in every row.

# %% tags=["full-width"]
paper_table = paper.table2(cfg.experiment)
labels = {n: plots.dataset_label(n, cfg.experiment) for n in table.dataset.unique()}
display(Markdown(analysis.table2_markdown(table, paper_table, labels, plots.METHOD_LABELS)))

# %% [markdown]
# ## ROC curves

# %%
in_name = cfg.info["in_distribution"]
methods = list(run.fitted.detectors)
fig = plots.roc_grid(
    scores[in_name]["label"].astype(bool), {m: scores[in_name][m] for m in methods},
    {n: {m: s[m] for m in methods} for n, s in scores.items() if n != in_name},
    cfg.experiment, title="ROC curves: in-distribution test set against each dataset",
)
plots.save_figure(fig, cfg.results_dir / "roc_curves.png");

# %%
fig = plots.metric_comparison(table, paper_table, metric="auroc", experiment=cfg.experiment,
                              title="AUROC: ours (bars, 95% CI) and the paper's (markers)")
plots.save_figure(fig, cfg.results_dir / "auroc_vs_paper.png");

# %% [markdown]
# ## The paper's claims, checked

# %%
checks = analysis.claims(table, cfg.experiment)
display(Markdown(analysis.claims_markdown(checks)))

# %% [markdown]
# ## What we see

# %%
diff = analysis.compare_with_paper(table, paper_table)
auroc = diff[diff.metric == "auroc"]
outside = auroc[auroc.outside_ci]
n_rep = int((checks.verdict == "reproduced").sum())
display(Markdown(
    f"{n_rep} of the {len(checks)} claims checked are reproduced in this run "
    f"(profile `{cfg.profile}`, base accuracy {100 * run.base.test_accuracy:.2f} %). "
    f"Our AUROC differs from the paper's by {auroc.difference.abs().mean():.1f} points on "
    f"average; the paper's value lies outside our 95 % interval in {len(outside)} of "
    f"{len(auroc)} cells"
    + (f", the largest gap being {outside.loc[outside.difference.abs().idxmax(), 'dataset']} / "
       f"{outside.loc[outside.difference.abs().idxmax(), 'method']} "
       f"({outside.difference.abs().max():.1f} points)." if len(outside) else ".")
    + (" This is a reduced profile: a weaker classifier and smaller sets than the paper's, "
       "so differences are expected." if cfg.profile in ("smoke", "quick") else "")
))

# %%
seconds = time.perf_counter() - t0
runner.record_timing(cfg, "evaluation", seconds)
summary = pipeline.write_summary(run, checks)
print(f"{summary.name} written to the results folder")

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# Rerun the whole experiment with another seed and see which cells of the table
# move by more than their confidence interval:
#
# ```bash
# python -m introspection build --profile quick --experiment mnist -p seed 1
# ```
# :::
