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
# # The base classifier
#
# **The question.** Introspection reads the logits of a classifier that is already
# trained. For MNIST the paper trains the CNN of its Table 1 for 30 epochs with
# RMSprop, batch size 64 and "slight rotations, zooms and shifts", and reports
# **99.65 %** test accuracy (Section 2.1). For CIFAR-10 it uses a Wide ResNet 28-8
# (Section 3.2) without stating its accuracy. This chapter trains the experiment's
# classifier, or reuses it when it was already trained with the same parameters
# (in this artifacts folder, or published with the book).

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (a Wide ResNet)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
epochs: "int or None" = None  # training epochs of the base classifier (None: the profile's value)
wrn_width: "int or None" = None  # Wide ResNet widening factor, CIFAR-10 only (None: the profile's value)
retrain: bool = False  # train from scratch even when matching weights exist (cached or published)

# %% [markdown]
# ## Set-up
#
# The profile and the parameters above resolve into the run's configuration;
# the table lists the values this stage uses.

# %%
from IPython.display import Markdown, display

from introspection import analysis, config, pipeline, plots

cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, epochs=epochs, wrn_width=wrn_width,
)
cfg.table("base_model")

# %% [markdown]
# ## Training, or the published weights
#
# `pipeline.base_model` trains the classifier with the experiment's recipe
# (`introspection.training.RECIPES`), unless a model trained with these exact
# parameters is already in the artifacts folder, or the profile's weights are
# published with the book (`weights/<profile>/<experiment>/`, committed for the `cpu`
# profile): those are verified by their SHA-256 and loaded in Keras' safe mode.
# `retrain = True` (or `build --retrain`) trains from scratch in any case.
#
# The training arithmetic is chosen by the hardware (`precision = "auto"`,
# `introspection.hardware`): mixed bfloat16 (layers compute in bfloat16, weights stay
# float32) where the CPU computes bfloat16 natively (AMX or AVX-512 BF16), float32
# everywhere else, where bfloat16 would be emulated and several times slower. The
# Wide ResNet also trains with fused batch normalisation
# (`models.fused_batch_normalization`: the same computation in one kernel). Every
# later chapter uses a float32 model of standard Keras layers that holds the trained
# weights.

# %%
base = pipeline.base_model(cfg, verbose=2, retrain=retrain)
made = base.history.get("trained_on", {})
how = {
    "trained": "were trained now, by this run",
    "cache": "were trained earlier with these exact parameters and are reused from the artifacts folder",
    "published": f"are the published weights of the `{cfg.profile}` profile, verified and reused",
}[base.origin]
display(Markdown(
    f"The weights {how}. They were trained on {made.get('cpu', 'an unrecorded CPU')} "
    f"({made.get('isa', '?')}, {made.get('cores', '?')} cores) on {made.get('date', '?')}, "
    f"in `{made.get('precision', '?')}` arithmetic — precision "
    f"{made.get('precision_reason', '?')}." + (f" Note: {base.note}." if base.note else "")
))

# %% [markdown]
# ## Learning curves

# %%
paper_acc = analysis.PAPER_ACCURACY[cfg.experiment]
fig = plots.learning_curves(
    base.history,
    title=f"{base.model.name}: training on {cfg.experiment}",
    reference={"val_accuracy": paper_acc} if paper_acc else None,
)
plots.save_figure(fig, cfg.results_dir / "base_model_learning_curves.png");

# %% [markdown]
# ## Side by side with the paper

# %%
import pandas as pd

pd.DataFrame(
    {
        "ours": [base.model.name, f"{base.history['n_parameters']:,}", len(base.history["loss"]),
                 made.get("precision", "?"), f"{100 * base.test_accuracy:.2f} %"],
        "paper": ["Table 1 CNN" if cfg.experiment == "mnist" else "WRN-28-8",
                  "730,602" if cfg.experiment == "mnist" else "23,369,210",
                  30 if cfg.experiment == "mnist" else "not stated", "not stated",
                  f"{100 * paper_acc:.2f} %" if paper_acc else "not stated"],
    },
    index=["model", "parameters", "epochs", "training arithmetic", "test accuracy"],
)

# %% [markdown]
# ## What we see

# %%
gap = (
    f"{100 * (base.test_accuracy - paper_acc):+.2f} points from the paper's {100 * paper_acc:.2f} %"
    if paper_acc else "the paper does not report this accuracy"
)
display(Markdown(
    f"The `{base.model.name}` classifier reaches **{100 * base.test_accuracy:.2f} %** test "
    f"accuracy after {len(base.history['loss'])} epochs ({gap}). Training took "
    f"{sum(base.history['epoch_seconds']) / 60:.1f} minutes on the machine above (the sum of "
    f"the epochs' wall times, median {pd.Series(base.history['epoch_seconds']).median():.0f} s "
    "per epoch). "
    + ("This is a reduced profile: expect a lower accuracy than the paper's, and fewer "
       "natural errors for the later chapters to work with." if cfg.profile in ("smoke", "quick")
       else "")
))

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# Train longer and watch the test accuracy approach the paper's:
#
# ```bash
# papermill book/01_base_model.ipynb out.ipynb -p experiment mnist -p profile quick -p epochs 10
# ```
#
# On CIFAR-10, change the width of the Wide ResNet (`-p wrn_width 4`) and compare the
# accuracy with the training time. With `-p profile cpu` the published weights are
# reused; add `-p retrain True` to train them again on your machine, and compare the
# learning curves and the epoch times with the ones above.
# :::
