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
# # Beyond the paper: kinds of misclassification never seen in training
#
# **The question.** Introspection-Net is trained on 700 examples of *every* kind of
# misclassification it is later tested on (Section 3.2). A deployed detector meets
# kinds it has never seen: a new attack, a new source of out-of-distribution data.
# How much of Table 2 is left when a kind is missing from training? For each kind
# in turn (the black-patch errors, each attack, each OOD set) we train the same
# network, with the same seed and sets, without it, and test it on every kind. The
# Softmax Baseline and the Trust Score, which never train on misclassified data,
# are the reference: a detector that does worse on an unseen kind than the Softmax
# Baseline has learnt the kinds, not misclassification.

# %% tags=["parameters"]
experiment = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (a Wide ResNet)
profile = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed = 0  # seed of every random choice (non-negative integer)
data_dir = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
introspection_epochs = None  # epochs of every network trained here (None: the profile's; paper 60)

# %% [markdown]
# ## Set-up

# %%
import time

import pandas as pd
from IPython.display import Markdown, display

from introspection import analysis, beyond, config, pipeline, plots

t0 = time.perf_counter()
cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, introspection_epochs=introspection_epochs,
)
cfg.table("introspection_net")

# %% [markdown]
# ## Leave one kind out
#
# One network per held-out kind, each trained on the training set of Table 2 minus
# that kind (its training and validation examples).

# %%
base = pipeline.base_model(cfg, verbose=0)
gen = pipeline.misclassifications(cfg, base.model)
sets = pipeline.introspection_sets(cfg, gen)
fitted = pipeline.fit_detectors(cfg, gen, sets, base.model)
scores = pipeline.score_test_sets(cfg, gen, sets, fitted)
table2 = pipeline.evaluate(cfg, scores)
loo, run = beyond.leave_one_out(cfg, gen, sets)
full, unseen = beyond.leave_one_out_table(cfg, loo, scores, table2)
print(run.line())
print(f"{len(full)} rows written to {cfg.results_dir / 'leave_one_out.csv'}")

# %% [markdown]
# ## AUROC of each leave-one-out network on every kind
#
# Row: the kind left out of training. Column: the kind tested. The diagonal is the
# network tested on the kind it never saw; the last row is the paper's network,
# trained on all of them.

# %% tags=["full-width"]
grid = full.pivot(index="held_out", columns="dataset", values="auroc")
order = list(loo)
grid = grid.loc[order, order]
seen = table2[table2.method == "introspection_net"].set_index("dataset").auroc
grid = pd.concat([grid, seen.loc[order].to_frame("none (paper)").T])
grid.index = [plots.dataset_label(d, cfg.experiment) if d in order else d for d in grid.index]
grid.columns = [plots.dataset_label(d, cfg.experiment) for d in grid.columns]
fig = plots.heatmap(
    grid, title="Introspection-Net AUROC (%): kind left out of training (rows) vs kind tested",
    xlabel="kind tested", ylabel="kind left out of training",
)
plots.save_figure(fig, cfg.results_dir / "leave_one_out.png");

# %% [markdown]
# ## Seen against unseen, and against the baselines
#
# AUROC (%) on the held-out kind: trained with it (Table 2, with its bootstrap 95 %
# interval), trained without it, and the two baselines of the paper.

# %%
shown = unseen.copy()
shown.index = [plots.dataset_label(d, cfg.experiment) for d in shown.index]
shown.round(1)

# %% [markdown]
# ## What we see

# %%
display(Markdown(analysis.unseen_report(unseen, cfg.experiment)))
pipeline.record_timing(cfg, "unseen", time.perf_counter() - t0)

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# Fewer training epochs make every network less specialised. Does the gap between
# seen and unseen kinds shrink?
#
# ```bash
# papermill book/09_unseen.ipynb out.ipynb -p experiment mnist -p introspection_epochs 10
# ```
# :::
