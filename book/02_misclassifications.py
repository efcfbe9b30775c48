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
# # Misclassified examples
#
# **The question.** Section 2.2 of the paper builds three kinds of
# misclassifications: *errors* (test images with a 7×7 black patch that the
# classifier gets wrong), *out-of-distribution* data (Gaussian and uniform noise,
# the other dataset of the pair, Fashion-MNIST) and *adversarial examples* (FGSM,
# BIM and DeepFool, through CleverHans). It keeps only images the classifier
# misclassifies and gives no attack budgets; our choices are listed below and
# discussed in the chapter on deviations.

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile names its network)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
fgsm_eps: "float or None" = None  # FGSM L-inf budget in the [0, 1] pixel scale (None: 0.3 MNIST, 8/255 CIFAR-10)
bim_eps: "float or None" = None  # BIM L-inf budget in the [0, 1] pixel scale (None: 0.1 MNIST, calibrated in chapter 12; 8/255 CIFAR-10)
patch_max_tries: "int or None" = None  # patch positions tried per image for "errors" (None: the profile's)

# %% [markdown]
# ## Set-up

# %%
from IPython.display import Markdown, display

from introspection import analysis, config, generation, pipeline, plots

cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, fgsm_eps=fgsm_eps, bim_eps=bim_eps,
    patch_max_tries=patch_max_tries,
)
run = pipeline.stages(cfg)  # each stage is computed or loaded when first read
cfg.table("misclassifications")

# %% [markdown]
# ## Generating every dataset
#
# The in-distribution test images are split once, by seed, into a training side
# and a test side for Introspection-Net (Section 3.2). Patches and attacks are
# applied to correctly classified images of each side until enough misclassified
# examples exist; OOD sets are drawn and split the same way. Every set is cached
# with the classifier's logits and penultimate features.

# %%
gen = run.gen
print(run.base.run.line())
print(gen.run.line())

# %% [markdown]
# ## Counts, yields and perturbation sizes
#
# *attempted*: source images attacked or patched; *success rate*: the fraction of
# them that ended misclassified; *patch tries* and *yield*: patched images tried
# and the fraction misclassified. Norms are in the [0, 1] pixel scale.

# %%
counts = generation.generation_table(gen)
analysis.display_table(counts, 3)

# %% [markdown]
# ## What the datasets look like
#
# Eight random images of each dataset, titled with the classifier's prediction and
# its softmax probability (and the true label of the source image, when there is one).

# %%
import matplotlib.pyplot as plt

for name in gen.sets:
    images, titles = generation.sample_images(gen[name], n=8, seed=cfg.seed)
    fig = plots.image_grid(images, titles=titles, ncols=8,
                           suptitle=plots.dataset_label(name, cfg.experiment))
    plots.save_figure(fig, cfg.results_dir / f"examples_{name}.png")
    plt.show()
    plt.close(fig)

# %% [markdown]
# ## Side by side with the paper
#
# The paper reports neither set sizes before filtering, nor attack budgets, nor
# success rates: there is nothing to compare number by number. It keeps only
# misclassified images, as we do; the sizes we need are Section 3.2's
# (`n_train_other` for training and `n_test` for testing per dataset).

# %% [markdown]
# ## What we see

# %%
adv = counts.loc[["fgsm", "bim", "deepfool"]]
errors = counts.loc["errors"]
top = counts["mean max logit"]
clean = top[cfg.info["in_distribution"]]
lower = [f"{n} ({v:.1f})" for n, v in top.drop(cfg.info["in_distribution"]).items() if v < clean]
higher = [f"{n} ({v:.1f})" for n, v in top.drop(cfg.info["in_distribution"]).items() if v >= clean]
if higher:
    logit_text = (f"The mean max logit is lower than on the in-distribution images ({clean:.1f})"
                  + (f" on {', '.join(lower)}, and" if lower else "")
                  + f" higher on {', '.join(higher)}.")
else:
    logit_text = (f"The mean max logit is lower on every other set than on the in-distribution "
                  f"images ({clean:.1f}).")
display(Markdown(
    f"With ε = {cfg['fgsm_eps']:.3g} (FGSM) and ε = {cfg['bim_eps']:.3g} (BIM, "
    f"{cfg['bim_nb_iter']} steps of {cfg.bim_step:.3g}), the attacks succeed on "
    + ", ".join(f"{r['success rate (%)']:.1f} % ({n})" for n, r in adv.iterrows())
    + " of the correctly classified images attacked. DeepFool needs a mean L2 perturbation "
    f"of only {adv.loc['deepfool', 'mean L2']:.2f}, against "
    f"{adv.loc['fgsm', 'mean L2']:.2f} for FGSM. Black patches are far less effective: "
    f"{errors['yield (%)']:.1f} % of the {int(errors['patch tries'])} patched images tried "
    f"were misclassified. {logit_text} The next chapter looks at this closely."
))

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# Change the budgets (a weaker FGSM; on MNIST, BIM at the usual 0.3 instead of the
# calibrated 0.1) and see how many images flip, and how the next chapters'
# detection rates change:
#
# ```bash
# papermill book/02_misclassifications.ipynb out.ipynb -p profile quick -p experiment mnist -p fgsm_eps 0.1 -p bim_eps 0.3
# papermill book/02_misclassifications.ipynb out.ipynb -p profile quick -p experiment cifar10 -p fgsm_eps 0.01 -p bim_eps 0.01
# ```
# :::
