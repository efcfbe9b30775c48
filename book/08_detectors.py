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
# # Beyond the paper: five more detectors
#
# **The question.** The paper compares Introspection-Net with two baselines only,
# and its conclusion asks, as future work, whether misclassifications can be
# detected from the logits of in-distribution data alone, without training on
# misclassified examples. Detectors published since answer part of that question.
# We add five, on the same detector interface and the same test sets as Table 2:
#
# - **MaxLogit** (Hendrycks et al., ICML 2022): the largest logit. No training.
# - **Energy** (Liu et al., NeurIPS 2020): $T \log \sum_k e^{z_k / T}$ with $T = 1$.
#   No training.
# - **ODIN** (Liang et al., ICLR 2018): the softmax at temperature $T$ of an input
#   moved by $\varepsilon$ in the direction that raises it. It uses the classifier's
#   gradients but no training data. The paper tunes $T$ and $\varepsilon$ on OOD
#   validation data; we fix them (values below) so that nothing sees the test kinds.
# - **Mahalanobis** (Lee et al., NeurIPS 2018): the distance of the penultimate
#   features to the closest class mean, with one covariance shared by the classes,
#   both estimated from correctly labelled training images. We test it with and
#   without the paper's input pre-processing (a step of $\varepsilon$ that lowers
#   the distance).
#
# None of the five ever sees a misclassified example. Introspection-Net sees
# examples of each kind (700 in the paper, Section 3.2; the profile's number is
# printed below).

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile names its network)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
odin_eps: "float or None" = None  # ODIN's pre-processing step in [0, 1] pixels (None: the profile's, 0.0014)
mahalanobis_eps: "float or None" = None  # Mahalanobis pre-processing step in [0, 1] pixels (None: 0.0014)

# %% [markdown]
# ## Set-up

# %%
import pandas as pd
from IPython.display import Markdown, display

from introspection import analysis, config, more_detectors, paper, pipeline, plots

cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, odin_eps=odin_eps,
    mahalanobis_eps=mahalanobis_eps,
)
run = pipeline.stages(cfg)  # each stage is computed or loaded when first read
cfg.table("detectors")

# %% [markdown]
# ## Scores on the test sets of Table 2
#
# The paper's three methods come from the earlier stages (cached); the five others
# score the same test examples of each dataset (2000 in the paper; the profile's
# number is printed below).

# %%
table = more_detectors.detector_table(cfg, run.scores, run.extra)
print(f"Introspection-Net trained on {cfg['n_train_other']} examples of each kind; "
      f"{cfg['n_test']} test examples of each dataset")
print(run.extra.run.line())
print(f"{len(table)} rows written to detectors.csv in the results folder")

# %% [markdown]
# ## AUROC of the eight detectors
#
# One row per kind of misclassification, one column per detector; the
# in-distribution test examples are the positives of every row, as in Table 2.

# %% tags=["full-width"]
fig = plots.heatmap(plots.auroc_grid(table, cfg.experiment),
                    title="AUROC (%) of every detector on every kind of misclassification")
plots.save_figure(fig, cfg.results_dir / "detectors_auroc.png");

# %% [markdown]
# ## The full table
#
# Our value with its bootstrap 95 % interval (paired across methods); the best
# method per dataset and metric in bold; the paper's value in parentheses where it
# has one.

# %% tags=["full-width"]
paper_table = paper.table2(cfg.experiment)
labels = {n: plots.dataset_label(n, cfg.experiment) for n in table.dataset.unique()}
display(Markdown(analysis.table2_markdown(table, paper_table, labels, plots.METHOD_LABELS)))

# %% [markdown]
# ## The best detector of each row

# %%
best = more_detectors.best_per_row(table)
best["best"] = best["best"].map(plots.method_label)
best["runner-up"] = best["runner-up"].map(plots.method_label)
analysis.display_table(best, 1)

# %% [markdown]
# ## What we see

# %%
rank = analysis.detector_ranking(table)


def kinds(mask):
    """'k of the n kinds (their names)' for the kinds where ``mask`` holds."""
    names = [plots.dataset_label(d, cfg.experiment) for d in rank.index[mask]]
    return f"{len(names)} of the {len(rank)} kinds" + (f" ({', '.join(names)})" if names else "")


logit_only = [plots.method_label(m) for m in ("max_logit", "energy", "softmax_baseline")]
display(Markdown(
    f"Introspection-Net has the highest AUROC on {kinds(rank.best == 'introspection_net')}. "
    f"A detector that never saw a misclassified example reaches its 95 % interval or beats it "
    f"on {kinds(rank.free_reaches)}, and is above the interval on {kinds(rank.free_above)}. "
    "On the paper's future-work question, whether in-distribution logits alone suffice: the "
    f"best of {', '.join(logit_only)} is within Introspection-Net's interval or above it on "
    f"{kinds(rank.logits_reach)}."))
analysis.display_table(pd.DataFrame({
    "best detector": [f"{plots.method_label(r.best)} ({r.best_auroc:.1f})" for r in rank.itertuples()],
    "Introspection-Net [95 % CI]": [f"{r.net:.1f} [{r.net_lo:.1f}, {r.net_hi:.1f}]"
                                    for r in rank.itertuples()],
    "best without misclassified data": [f"{plots.method_label(r.free)} ({r.free_auroc:.1f})"
                                        for r in rank.itertuples()]},
    index=[plots.dataset_label(d, cfg.experiment) for d in rank.index]))

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# ODIN and the pre-processed Mahalanobis score depend on the step $\varepsilon$.
# Turn it off, or make it ten times larger, and compare with the plain scores:
#
# ```bash
# papermill book/08_detectors.ipynb out.ipynb -p experiment mnist -p odin_eps 0.0 -p mahalanobis_eps 0.0
# papermill book/08_detectors.ipynb out.ipynb -p experiment cifar10 -p odin_eps 0.014
# ```
# :::
