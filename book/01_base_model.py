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
# (Section 3.2) without stating its accuracy. This chapter trains the experiment's classifier, or reuses it when it was already
# trained with the same parameters (in this artifacts folder, or published with the
# book), and says where it differs from the paper's.

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile's architecture)
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

from introspection import analysis, classifier, config, datasets, paper, plots

cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, epochs=epochs, wrn_width=wrn_width,
)
cfg.table("base_model")

# %% [markdown]
# ## The classifier

# %%
c = cfg.params
if cfg.experiment == "mnist":
    text = (f"The CNN of the paper's Table 1, trained as Section 2.1 says: RMSprop (learning "
            f"rate {c['learning_rate']:g}, {c['schedule']} schedule), batch {c['batch_size']}, "
            f"{c['epochs']} epochs, slight rotations, zooms and shifts.")
elif c["architecture"] == "wide_resnet":
    optimizer = {"sgd": f"SGD (Nesterov momentum {c['momentum']:g})", "adam": "Adam",
                 "rmsprop": "RMSprop"}[c["optimizer"]]
    same = (c["wrn_depth"], c["wrn_width"]) == (28, 8)
    text = (f"A pre-activation Wide ResNet, WRN-{c['wrn_depth']}-{c['wrn_width']}"
            + (", the paper's network" if same else ", of the paper's family (it used WRN-28-8)")
            + f", trained with {optimizer}, learning rate {c['learning_rate']:g} "
            f"({c['schedule']} schedule), batch {c['batch_size']}, weight decay "
            f"{c['weight_decay']:g}, {c['epochs']} epochs, random crops ({c['crop_pad']}-pixel "
            "padding) and horizontal flips.")
else:
    init = ("as PyTorch's default (as airbench)" if c["kernel_init"] == "torch"
            else "as Keras' Glorot uniform")
    lookahead = ("; airbench's Lookahead moves the weights to their running average every 5 "
                 "steps, and the classifier keeps the averaged weights" if c["lookahead"] else "")
    text = (
        "**Not the paper's network.** The paper's WRN-28-8 would take days on two CPU cores "
        "(methods page; the README compares the Wide ResNet this profile trained before). This "
        "profile trains airbench94's network instead (Jordan 2024, arXiv 2404.00498), with its "
        "recipe: a fixed 2x2 whitening convolution set from the training images, three groups "
        "of two 3x3 convolutions (64, 256 and 256 channels) with max pooling and batch "
        "normalisation, the first filters of each convolution set to the identity and the "
        f"others drawn {init}, and logits scaled by 1/9; SGD with Nesterov momentum "
        f"{c['momentum']:g}, batch {c['batch_size']}, peak learning rate "
        f"{c['learning_rate']:g} ({c['bias_lr_scale']:g} times that for the batch-norm biases, "
        f"`{c['schedule']}` schedule), weight decay {c['weight_decay']:g}, {c['epochs']} "
        f"epochs, random translations by up to {c['crop_pad']} pixels ({c['crop_fill']} "
        f"padding) and horizontal flips{lookahead}. Unlike airbench it uses ReLU rather than "
        "GELU (faster on CPU), computes the whitening in float32 (bfloat16 is too coarse for "
        "it), and has no label smoothing and no test-time augmentation: the detectors read the "
        "logits of one network, as the paper's do. The `paper` profile keeps the WRN-28-8.")
display(Markdown(text))

# %% [markdown]
# ## Training, or the published weights
#
# `classifier.base_model` trains the classifier with the experiment's recipe
# (`introspection.training.RECIPES`), unless a model trained with these exact
# parameters is already in the artifacts folder, or the profile's weights are
# published with the book (`weights/<profile>/<experiment>/`, committed for the `cpu`
# profile): those are verified by their SHA-256 and loaded in Keras' safe mode.
# `retrain = True` (or `build --retrain`) trains from scratch in any case.
#
# The training arithmetic is chosen by the hardware (`precision = "auto"`,
# `introspection.hardware`): mixed bfloat16 (layers compute in bfloat16, weights stay
# float32) where the CPU computes bfloat16 natively (AMX or AVX-512 BF16), float32
# everywhere else, where bfloat16 would be emulated and several times slower. A
# Wide ResNet also trains with fused batch normalisation
# (`models.fused_batch_normalization`: the same computation in one kernel). Every
# later chapter uses a float32 model of standard Keras layers that holds the trained
# weights, and its logits are float32.

# %%
base = classifier.base_model(cfg, verbose=0, retrain=retrain, progress=True)
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
# ## What the training cost
#
# Wall time is the sum of the epochs' times (each includes evaluating the 10,000
# test images); the FLOP count is that of the convolutions and dense layers
# (`models.forward_flops`), three forward passes per training image seen.

# %%
import pandas as pd

cost = classifier.training_cost(cfg, base)
pd.DataFrame(
    {
        "value": [cost["epochs"], f"{cost['seconds'] / 60:.1f}", f"{cost['images_per_second']:.0f}",
                  f"{cost['forward_gflop']:.3f}", f"{cost['training_pflop']:.3f}"],
    },
    index=["epochs", "wall time (min)", "training images per second",
           "forward pass per image (GFLOP)", "training (PFLOP)"],
)

# %% [markdown]
# ## Learning curves

# %%
paper_acc = paper.ACCURACY[cfg.experiment]
fig = plots.learning_curves(
    base.history,
    title=f"{base.model.name}: training on {cfg.experiment}",
    reference={"val_accuracy": paper_acc} if paper_acc else None,
)
plots.save_figure(fig, cfg.results_dir / "base_model_learning_curves.png");

# %% [markdown]
# ## The data: lossless and JPEG-decoded images
#
# The offline copy of CIFAR-10 that this book is developed with holds 55,000 images
# decoded from JPEG (quality 75, 4:2:0): all but the first 4,000 training and the
# first 1,000 test images (`datasets.OFFLINE_LOSSLESS`). The table compares the
# accuracy on the 1,000 lossless test images with that on the 9,000 others, and on
# the same 1,000 images after one JPEG round trip made here, which isolates the
# cost of the compression from the difference between two sets of images. MNIST
# and Fashion-MNIST are bit-exact.

# %%
if cfg.experiment == "cifar10":
    jpeg = classifier.jpeg_cost(cfg, base.model, seed=cfg.seed)
    display(analysis.display_table(jpeg["table"], 2))
    lossless, others, recoded = jpeg["table"]["accuracy (%)"]
    lost, *ci = jpeg["paired"]
    n_lossless = datasets.OFFLINE_LOSSLESS["cifar10"]["train"]
    n_all = datasets.DATASETS["cifar10"]["n_train"]
    cost_text = (
        f"compression costs {lost:.1f} points on them (95 % interval {ci[0]:.1f} to {ci[1]:.1f})"
        if ci[0] > 0 else
        f"the difference, {lost:+.1f} points (95 % interval {ci[0]:+.1f} to {ci[1]:+.1f}), is "
        "not distinguishable from zero on 1,000 images"
    )
    display(Markdown(
        f"On the lossless images the classifier is right {lossless:.1f} % of the time, on the "
        f"JPEG-decoded ones {others:.1f} %. The same 1,000 images after one JPEG round trip "
        f"give {recoded:.1f} %: {cost_text}. One more round trip changes a lossless image by "
        f"{jpeg['table'].iloc[0, 2]:.1f} grey levels on average and a JPEG-decoded one by "
        f"{jpeg['table'].iloc[1, 2]:.2f}, which confirms which images were compressed. The "
        f"training set of the offline copy is a like mix ({n_lossless:,} lossless images, "
        f"{n_all - n_lossless:,} JPEG-decoded)."
    ))
else:
    display(Markdown("MNIST is bit-exact in the offline copy: nothing to measure here."))

# %% [markdown]
# ## Side by side with the paper

# %%
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
# On CIFAR-10, train the paper's family instead, a Wide ResNet
# (`-p overrides '{"architecture": "wide_resnet", "wrn_depth": 16, "wrn_width": 2}'`),
# and compare the accuracy with the training time. With `-p profile cpu` the published weights are
# reused; add `-p retrain True` to train them again on your machine, and compare the
# learning curves and the epoch times with the ones above.
# :::
