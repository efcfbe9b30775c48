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
# # Introspection-Net
#
# **The question.** Section 3.1 of the paper trains *Introspection-Net*, three
# dense layers of 128 ReLU units (dropout 0.2 after the first two, batch
# normalisation after the second dropout) on the 10 logits, to regress 1 when the
# classifier's prediction is correct and 0 otherwise (RMSprop, mean squared error,
# 60 epochs). Section 3.2 trains it on 5000 in-distribution examples plus 700 of
# each other dataset, 10 % of it for validation, and tests on 2000 examples of
# each dataset. Its competitors are the Softmax Baseline (Hendrycks & Gimpel,
# 2017), which needs no training, and the Trust Score (Jiang et al., 2018), fitted
# on the classifier's training data.

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile names its network)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
introspection_epochs: "int or None" = None  # Introspection-Net training epochs (None: the profile's; paper 60)
trust_feature: "str or None" = None  # Trust Score feature space: "features" (penultimate), "logits" or "pixels"

# %% [markdown]
# ## Set-up

# %%
from IPython.display import Markdown, display

from introspection import config, pipeline, plots

cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, introspection_epochs=introspection_epochs,
    trust_feature=trust_feature,
)
run = pipeline.stages(cfg)  # each stage is computed or loaded when first read
cfg.table("introspection_net")

# %% [markdown]
# ## Section 3.2's data sets
#
# Labels: 1 = the classifier's prediction is correct. Every OOD, adversarial and
# patch example is a 0, and so are the in-distribution images the classifier gets
# wrong. No source image appears on both the training and the test side.

# %%
sizes = pipeline.set_sizes(run.sets)
sizes

# %% [markdown]
# ## Training Introspection-Net, fitting the baselines

# %%
fitted = run.fitted
print(fitted.run.line())
fig = plots.learning_curves(fitted.history, title="Introspection-Net (MSE loss; accuracy at 0.5)")
plots.save_figure(fig, cfg.results_dir / "introspection_net_learning_curves.png");

# %% [markdown]
# ## Side by side with the paper
#
# | | ours | paper |
# |---|---|---|
# | architecture | Dense(128)-Dropout-Dense(128)-Dropout-BN-Dense(128)-Dense(1, sigmoid) | 3 dense layers of 128, dropout 0.2, BN |
# | loss, optimiser | MSE, RMSprop | MSE, RMSprop |
#
# The sizes and epochs of this run:

# %%
import pandas as pd

pd.DataFrame(
    {
        "ours": [cfg["n_train_in"], cfg["n_train_other"], f"{100 * cfg['val_fraction']:.0f} %",
                 cfg["n_test"], len(fitted.history["loss"]),
                 f"{cfg['trust_feature']} of {fitted.trust_fit_size} training images"],
        "paper": [5000, 700, "10 %", 2000, 60, "not stated"],
    },
    index=["in-distribution (train)", "each other dataset (train)", "validation",
           "each dataset (test)", "Introspection-Net epochs", "Trust Score fitted on"],
)

# %% [markdown]
# ## What we see

# %%
h = fitted.history
display(Markdown(
    f"Introspection-Net trained on {int(sizes.loc['total', 'train'])} examples "
    f"({int(sizes.loc['total', 'correct (train)'])} labelled correct) for {len(h['loss'])} "
    f"epochs. Its validation accuracy at the 0.5 threshold ends at "
    f"{100 * h['val_accuracy'][-1]:.1f} % (best {100 * max(h['val_accuracy']):.1f} %), "
    f"with a validation MSE of {h['val_loss'][-1]:.3f}. "
    + ("The validation loss rose over the last epochs: it overfits a little."
       if h["val_loss"][-1] > min(h["val_loss"]) * 1.1 else
       "The validation loss did not rise at the end: no sign of overfitting.")
    + " The next chapter evaluates it on the test sets."
))

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# The paper does not say in which space the Trust Score looks for neighbours.
# Compare the penultimate features (default) with raw pixels, then run the
# evaluation chapter with the same parameter:
#
# ```bash
# papermill book/04_introspection_net.ipynb out.ipynb -p profile quick -p experiment mnist -p trust_feature pixels
# papermill book/05_evaluation.ipynb out5.ipynb -p profile quick -p experiment mnist -p trust_feature pixels
# ```
#
# For CIFAR-10, pass `-p experiment cifar10` to both.
# :::
