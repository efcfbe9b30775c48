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
# # What the logits reveal
#
# **The question.** Section 2.3 of the paper argues that misclassified inputs have
# *lower* logits than correctly classified ones. Figure 1 shows the distribution of
# the average logit over 1000 examples of each dataset, and a Student's t-test finds
# every difference with MNIST significant at p < 0.0001. The max logit is
# 16.5 ± 5.0 on MNIST against 10.8 ± 5.2 (BIM), 8.8 ± 2.6 (FGSM) and 3.4 ± 2.3
# (DeepFool). Figure 2 (Section 2.4) plots the min against the max logit, and the
# same for the softmax, for 300 examples of five datasets, to show that the logits
# separate what the softmax mixes up.

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile names its network)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
n_analysis: "int or None" = None  # examples per dataset for Figure 1 and the tests (None: the profile's; paper 1000)
n_scatter: "int or None" = None  # examples per dataset in Figure 2 (None: the profile's; paper 300)

# %% [markdown]
# ## Set-up

# %%
import time

from IPython.display import Markdown, display

from introspection import analysis, config, paper, pipeline, plots, runner

t0 = time.perf_counter()
cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, n_analysis=n_analysis, n_scatter=n_scatter,
)
run = pipeline.stages(cfg)  # each stage is computed or loaded when first read
cfg.table("logit_analysis")

# %% [markdown]
# ## The logits of each dataset
#
# The examples come from Introspection-Net's *test* side (no image used to train it).
# For the in-distribution set only correctly classified images are kept, as in the
# paper's comparison.

# %%
logits = pipeline.analysis_logits(cfg, run.gen, run.sets)
in_name = cfg.info["in_distribution"]
stats = analysis.logit_statistics(logits)
analysis.display_table(stats, 2)

# %% [markdown]
# ## Figure 1: the average logit

# %%
fig = plots.logit_distributions({n: z.mean(axis=1) for n, z in logits.items()}, cfg.experiment,
                                xlabel="mean logit", title="Figure 1: average logit per example")
plots.save_figure(fig, cfg.results_dir / "figure1_mean_logit.png");

# %% [markdown]
# Welch's t-test of each dataset's mean logit against the in-distribution one
# (the paper says Student's; Welch's does not assume equal variances):

# %%
tests = analysis.welch_tests({n: z.mean(axis=1) for n, z in logits.items()}, in_name)
runner.write_table(cfg, tests, "logit_tests.csv")
tests.style.format({"mean": "{:.2f}", "reference_mean": "{:.2f}", "difference": "{:.2f}",
                    "t": "{:.1f}", "p_value": "{:.1e}"})

# %% [markdown]
# ## The max logit, side by side with the paper

# %%
fig = plots.logit_distributions(
    {n: z.max(axis=1) for n, z in logits.items()}, cfg.experiment, xlabel="max logit",
    reference={k: v for k, v in paper.MAX_LOGIT.items() if k in logits}
    if cfg.experiment == "mnist" else None,
    title="Max logit per example (diamonds: the paper's mean ± std)",
)
plots.save_figure(fig, cfg.results_dir / "max_logit.png");

# %%
runner.write_table(cfg, stats, "logit_stats.csv")
analysis.max_logit_comparison(stats, in_name)

# %% [markdown]
# ## Figure 2: min and max of the logits and of the softmax

# %%
shown = [in_name, "gaussian", cfg.info["cross_dataset"], "fgsm", "errors"]
fig = plots.min_max_scatter({n: logits[n] for n in shown}, cfg.experiment, n=cfg["n_scatter"],
                            seed=cfg.seed, title="Figure 2: logits (left) and softmax (right)")
plots.save_figure(fig, cfg.results_dir / "figure2_min_max.png");

# %% [markdown]
# How well the two numbers of Figure 2 separate the clean images from each set: the
# AUROC (%) of a logistic regression on (min, max), cross-validated over 5 folds, for
# the logits and for the softmax.

# %%
separation = analysis.min_max_separation(logits, in_name, seed=cfg.seed)
runner.write_table(cfg, separation, "logit_separation.csv")
analysis.display_table(separation, 1)

# %% [markdown]
# ## The paper's claims about the logits, checked

# %%
display(Markdown(analysis.claims_markdown(
    analysis.logit_claims(tests, stats, cfg.experiment, in_name, separation))))

# %% [markdown]
# ## What we see

# %%
lower = tests.index[tests["lower"]].tolist()
higher = tests.index[~tests["lower"]].tolist()
ref = stats.loc[in_name]
text = (
    f"Correctly classified {in_name} images have a mean max logit of {ref['max_logit']:.1f} ± "
    f"{ref['max_logit_std']:.1f}"
    + (" (paper: {:.1f} ± {:.1f})".format(*paper.MAX_LOGIT["mnist"])
       if cfg.experiment == "mnist" else "")
    + ". The mean logit is significantly lower (Welch, p < 0.0001) on "
    + (f"{len(lower)} of the {len(tests)} other datasets ({', '.join(lower)})" if lower
       else "none of the other datasets")
    + (f"; it is not on {', '.join(higher)}, so the paper's claim that *every* kind of "
       "misclassification has lower logits does not fully hold here." if higher
       else ": the paper's claim holds for every kind of misclassification here.")
)
display(Markdown(text))
runner.record_timing(cfg, "logit_analysis", time.perf_counter() - t0)

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# Use more examples per dataset and check that the p-values only shrink:
#
# ```bash
# papermill book/03_logit_analysis.ipynb out.ipynb -p profile quick -p experiment cifar10 -p n_analysis 1000
# ```
#
# Look at Figure 2 for CIFAR-10: does the softmax panel mix the datasets as much as
# on MNIST?
# :::
