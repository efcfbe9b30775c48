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
# **The question.** Introspection-Net is trained on examples of *every* kind of
# misclassification it is later tested on (700 of each in Section 3.2). A deployed detector meets
# kinds it has never seen: a new attack, a new source of out-of-distribution data.
# How much of Table 2 is left when a kind is missing from training? For each kind
# in turn (the black-patch errors, each attack, each OOD set) we train the same
# network, with the same seed and sets, without it, and test it on every kind. The
# Softmax Baseline and the Trust Score, which never train on misclassified data,
# are the reference: a detector that does worse on an unseen kind than the Softmax
# Baseline has learnt the kinds, not misclassification. Then two attacks that no
# detector was trained on, Carlini-Wagner L2 and PGD with a random start, test the
# paper's network as it is.

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile names its network)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
introspection_epochs: "int or None" = None  # epochs of every network trained here (None: the profile's; paper 60)
unseen_n: "int or None" = None  # test-side source images attacked with CW-L2 and PGD (None: the profile's)
cw_max_iter: "int or None" = None  # CW-L2 Adam steps per bisection step (None: the profile's)

# %% [markdown]
# ## Set-up

# %%
import time

import pandas as pd
from IPython.display import Markdown, display

from introspection import analysis, config, more_detectors, pipeline, plots, runner, unseen

t0 = time.perf_counter()
cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, introspection_epochs=introspection_epochs,
    unseen_n=unseen_n, cw_max_iter=cw_max_iter,
)
run = pipeline.stages(cfg)  # each stage is computed or loaded when first read
cfg.table("unseen")

# %% [markdown]
# ## Leave one kind out
#
# One network per held-out kind, each trained on the training set of Table 2 minus
# that kind (its training and validation examples).

# %%
table2 = run.table2
loo, timing = unseen.leave_one_out(cfg, run.gen, run.sets)
full, held_out = unseen.leave_one_out_table(cfg, loo, run.scores, table2)
print(timing.line())
print(f"{len(full)} rows written to leave_one_out.csv in the results folder")

# %% [markdown]
# ## AUROC of each leave-one-out network on every kind
#
# Row: the kind left out of training. Column: the kind tested. The diagonal is the
# network tested on the kind it never saw; the last row is the paper's network,
# trained on all of them.

# %% tags=["full-width"]
paper_net = table2[table2.method == "introspection_net"].assign(held_out="none (paper)")
grid = plots.auroc_grid(pd.concat([full, paper_net]), cfg.experiment, "held_out", "dataset")
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
shown = held_out.copy()
shown.index = [plots.dataset_label(d, cfg.experiment) for d in shown.index]
analysis.display_table(shown, 1)

# %% [markdown]
# ## What leaving a kind out does

# %%
def named(kinds):
    """' (their names)' for a list of kinds, or nothing."""
    return f" ({', '.join(plots.dataset_label(d, cfg.experiment) for d in kinds)})" if kinds else ""


worst = held_out.change.idxmin()
lost = held_out.index[held_out.unseen < held_out["seen lo"]].tolist()
below = held_out.index[held_out.unseen < held_out.softmax_baseline].tolist()
display(Markdown(
    "Held out of training, a kind of misclassification changes Introspection-Net's AUROC on it "
    f"by {held_out.change.mean():+.1f} points on average (median {held_out.change.median():+.1f}); "
    f"the largest drop is on {plots.dataset_label(worst, cfg.experiment)} "
    f"({held_out.loc[worst, 'seen']:.1f} seen, {held_out.loc[worst, 'unseen']:.1f} unseen). The "
    f"unseen value falls below the seen network's 95 % interval on {len(lost)} of the "
    f"{len(held_out)} kinds{named(lost)}, and below the Softmax Baseline, which trains on no "
    f"misclassified data at all, on {len(below)}{named(below)}."))

# %% [markdown]
# ## Attacks nobody trained on: CW-L2 and PGD
#
# The paper's attacks are L-inf (FGSM, BIM) or minimal-L2 (DeepFool). We add the
# Carlini-Wagner L2 attack (Carlini & Wagner, 2017; cleverhans 4, shimmed for Keras
# 3) and PGD, BIM's budget from a random start (Madry et al., 2018), against the
# source images of the test side. Introspection-Net is the network of Table 2: it
# was trained on FGSM, BIM and DeepFool examples, never on these.

# %%
attacked = unseen.unseen_attacks(cfg, run.gen, run.model)
attack_stats = pd.DataFrame(unseen.unseen_attack_stats(cfg)).T
attack_stats["success rate (%)"] = 100 * attack_stats["success_rate"]
analysis.display_table(attack_stats[
    ["attempted", "kept", "success rate (%)", "mean_l2", "mean_linf", "seconds"]].astype(float), 3)

# %%
attacked_scores = unseen.unseen_attack_scores(cfg, attacked, run.fitted, run.model)
unseen_table = unseen.unseen_attack_table(cfg, run.scores, run.extra, attacked_scores)
labels = {n: plots.dataset_label(n, cfg.experiment) for n in unseen_table.dataset.unique()}
display(Markdown(analysis.table2_markdown(unseen_table, None, labels, plots.METHOD_LABELS)))

# %% [markdown]
# AUROC of every detector on the attacks it was or was not trained on (the first
# three rows come from the previous chapter's table; only Introspection-Net trained
# on them).

# %% tags=["full-width"]
detectors_table = more_detectors.detector_table(cfg, run.scores, run.extra)
both = pd.concat([detectors_table[detectors_table.dataset.isin(["fgsm", "bim", "deepfool"])],
                  unseen_table])
fig = plots.heatmap(plots.auroc_grid(both, cfg.experiment), title="AUROC (%): attacks seen in training (top) and never seen")
plots.save_figure(fig, cfg.results_dir / "unseen_attacks.png");

# %% [markdown]
# ## What we see

# %%
parts = []
for d, block in unseen_table.groupby("dataset", sort=False):
    block = block.set_index("method")
    net, soft, st = block.loc["introspection_net"], block.loc["softmax_baseline"], attack_stats.loc[d]
    verdict = ("above" if net.auroc_lo > soft.auroc else
               "below" if net.auroc_hi < soft.auroc else "within the interval of")
    parts.append(
        f"**{plots.dataset_label(d, cfg.experiment)}** succeeds on {st['success rate (%)']:.1f} % "
        f"of the images attacked (mean L2 {st['mean_l2']:.2f}). Introspection-Net, which never "
        f"saw it, scores AUROC {net.auroc:.1f} [{net.auroc_lo:.1f}, {net.auroc_hi:.1f}], "
        f"{verdict} the Softmax Baseline's {soft.auroc:.1f}; the best detector is "
        f"{plots.method_label(block.auroc.idxmax())} ({block.auroc.max():.1f}).")
display(Markdown(" ".join(parts)))
# The stage's compute time: the leave-one-out trainings (recorded by leave_one_out) and
# the two attacks, a part of their own (as first computed, also when this run reused them).
runner.record_timing(
    cfg, "unseen", sum(s["seconds"] for s in unseen.unseen_attack_stats(cfg).values()),
    part="attacks",
)

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# Fewer training epochs make every network less specialised. Does the gap between
# seen and unseen kinds shrink?
#
# ```bash
# papermill book/09_unseen.ipynb out.ipynb -p profile quick -p experiment mnist -p introspection_epochs 10
# ```
#
# For CIFAR-10, pass `-p experiment cifar10`.
#
# A stronger CW-L2 (more Adam steps) finds smaller perturbations: are they harder
# to detect?
#
# ```bash
# papermill book/09_unseen.ipynb out.ipynb -p profile quick -p experiment mnist -p cw_max_iter 1000
# ```
# :::
