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
# # Beyond the paper: how much does one run decide?
#
# **The question.** The paper reports one training run of Introspection-Net per
# experiment, without an interval. Our Table 2 gives a bootstrap 95 % interval,
# which covers the sampling of the *test* examples but not the randomness of
# *training* (initial weights, dropout, order of the minibatches). Here the same
# network is trained on the same sets with several seeds, and the spread over seeds
# is set beside the bootstrap interval of the published run. Then every random
# choice made after the base classifier is drawn anew, sets included, and the whole
# of Table 2 computed again: how far would another run of the same recipe land?

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile names its network)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
n_seeds: "int or None" = None  # networks trained, with seeds 0, 1, ... of their random stream (None: the profile's; at least 2)
n_draws: "int or None" = None  # runs of Table 2 with every random choice after the base classifier drawn anew (None: the profile's)

# %% [markdown]
# ## Set-up

# %%
from IPython.display import Markdown, display

from introspection import analysis, config, pipeline, plots, seeds

cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, n_seeds=n_seeds, n_draws=n_draws,
)
run = pipeline.stages(cfg)  # each stage is computed or loaded when first read
cfg.table("seeds")

# %% [markdown]
# ## Training with every seed
#
# The first network is the one of Table 2; the others differ only by their seed.

# %%
table2 = run.table2
by_seed, timing = seeds.seed_scores(cfg, run.gen, run.sets, run.fitted)
by_seed_table = seeds.seed_table(cfg, by_seed, run.scores)
print(timing.line())
print(f"{len(by_seed_table)} rows written to seeds.csv in the results folder")

# %% [markdown]
# ## AUROC per seed

# %%
fig = plots.seed_spread(by_seed_table, table2, cfg.experiment)
plots.save_figure(fig, cfg.results_dir / "seeds_auroc.png");

# %% [markdown]
# ## Mean ± standard deviation over seeds, beside the bootstrap interval
#
# For each metric (percent): the mean and standard deviation over the seeds, and
# the width of the bootstrap 95 % interval of the first seed's run (Table 2). A
# standard deviation larger than a quarter of that width means that training
# randomness moves the result as much as the test sample does.

# %%
summary = seeds.seed_summary(by_seed_table, table2)
summary.index = [plots.dataset_label(d, cfg.experiment) for d in summary.index]
analysis.display_table(summary, 2)

# %% [markdown]
# ## Every random choice drawn anew
#
# A seed changes only Introspection-Net's training. A run draws much more after the
# base classifier: which test images are attacked or patched, the noise images, the
# split into training, validation and test sets, the images the Trust Score is fitted
# on. Here the paper's stages run again on the same base classifier, each time with
# all of these drawn anew (draw 0 is Table 2's run; `draws.csv` in the results
# folder). The table gives the standard deviation of each method's AUROC (percent)
# over the draws, and Introspection-Net's over its seeds alone beside it.

# %%
draws = seeds.draw_table(run)
spread = seeds.draw_spread(draws, by_seed_table)
spread.index = [plots.dataset_label(d, cfg.experiment) for d in spread.index]
shown = spread.rename(columns=lambda m: plots.method_label(m).replace("introspection_net",
                                                                     "Introspection-Net"))
analysis.display_table(shown.rename_axis(columns=None), 2)

# %% [markdown]
# ## What we see

# %%
std = summary["auroc std"]
wider = summary.index[4 * std > summary["auroc CI width"]].tolist()  # +-2 std against the CI
display(Markdown(
    f"Over {cfg['n_seeds']} seeds, Introspection-Net's AUROC varies by a standard deviation of "
    f"{std.median():.2f} points (median over kinds), at most {std.max():.2f} on {std.idxmax()}. "
    f"The seed spread (± 2 std) is wider than the bootstrap 95 % interval of a single run on "
    f"{len(wider)} of the {len(summary)} kinds" + (f" ({', '.join(wider)})" if wider else "")
    + (": there, the bootstrap interval alone understates the uncertainty of Table 2." if wider
       else ": the bootstrap interval of one run covers the training randomness too.")))

med = spread.median()
ratio = med["introspection_net"] / med["introspection_net, seeds only"]
display(Markdown(
    f"Over {cfg['n_draws']} draws of every random choice, the AUROC varies by a standard "
    f"deviation of {med['introspection_net']:.2f} points for Introspection-Net, "
    f"{med['softmax_baseline']:.2f} for the Softmax Baseline and {med['trust_score']:.2f} for "
    f"the Trust Score (medians over kinds), {ratio:.1f} times Introspection-Net's spread over "
    "seeds alone: " + ("most of a run's randomness lies in the data it draws, not in the "
    "network's training." if ratio > 2 else "the network's training is a large part of a "
    "run's randomness.") + " A difference between two runs of the same recipe has a standard "
    "deviation √2 times these."))

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# More seeds and draws give a better estimate of the spread (each draw makes every
# attack again, the longest part of a run):
#
# ```bash
# papermill book/10_seeds.ipynb out.ipynb -p experiment cifar10 -p profile cpu -p n_seeds 10 -p n_draws 8
# ```
# :::
