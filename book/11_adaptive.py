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
# # Beyond the paper: an attacker who knows the detector
#
# **The question.** Table 2 measures the detectors against attacks that ignore
# them: FGSM, BIM and DeepFool only try to change the class. Carlini & Wagner
# ("Adversarial examples are not easily detected", AISec 2017) showed that ten
# published detectors fall once the attacker optimises against the classifier and
# the detector together, and Tramèr et al. ("On adaptive attacks to adversarial
# example defenses", NeurIPS 2020) set out how to test a defence honestly. We do
# that here. An attacked image **evades** when the classifier gets it wrong *and*
# the detector accepts it, at the threshold that accepts 95 % of the correctly
# classified clean test images (the operating point of Table 2's FPR at 95 % TPR).
#
# The attacks, all bounded in L-inf by ε (pixels in [0, 1]):
#
# - **plain PGD**: the misclassification only, the detector ignored (the
#   non-adaptive reference);
# - **joint PGD**: misclassify by a logit margin κ, then push the detector's score
#   above its threshold (weight λ), for λ ∈ {1, 10} and κ ∈ {0, the median
#   margin of clean predictions}, with restarts. It needs gradients, so it attacks
#   the Softmax Baseline and Introspection-Net;
# - **logit matching** and **feature matching**: move the image until its logits
#   (or penultimate features) match those of a natural, correctly classified and
#   accepted image of the closest other class. This reaches the Trust Score, which
#   has no gradient.
#
# A detector's figure is the best of these attacks. Two sanity checks keep the
# evaluation honest: the unbounded attack must evade nearly always, and a
# gradient-free attack (SPSA) must not do better than the gradient-based one, or
# the gradients would be obfuscated.

# %% tags=["parameters"]
experiment: str = "mnist"  # "mnist" (the paper's Table 1 CNN) or "cifar10" (the profile names its network)
profile: str = "quick"  # "smoke", "quick", "cpu" or "paper" (see introspection.config.PROFILES)
seed: int = 0  # seed of every random choice (non-negative integer)
data_dir: "str or None" = None  # folder of mnist.npz, fashion_mnist.npz, cifar10.npz (None: $INTROSPECTION_DATA_DIR)
artifacts_dir: "str or None" = None  # cache of models and arrays (None: artifacts/ in the checkout)
results_dir: "str or None" = None  # where figures and tables go (None: book/results/<profile>/<experiment>)
overrides: dict = {}  # any parameter of introspection.config.PARAMETERS, e.g. {"epochs": 5}
adaptive_n: "int or None" = None  # test-side images attacked (None: the profile's)
adaptive_steps: "int or None" = None  # PGD steps per run (None: the profile's)

# %% [markdown]
# ## Set-up

# %%
from IPython.display import Markdown, display

from introspection import adaptive, analysis, config, pipeline, plots

cfg = config.configure(
    experiment, profile, seed=seed, data_dir=data_dir, artifacts_dir=artifacts_dir,
    results_dir=results_dir, overrides=overrides, adaptive_n=adaptive_n,
    adaptive_steps=adaptive_steps,
)
run = pipeline.stages(cfg)  # each stage is computed or loaded when first read
cfg.table("adaptive")

# %% [markdown]
# ## The attacks
#
# Radii: a quarter, half, one and two times Table 2's BIM budget (printed below),
# and unbounded.

# %%
print(f"Table 2's BIM budget: L-inf {cfg['bim_eps']:.4g} in the [0, 1] pixel scale")
table, timing = adaptive.adaptive_attacks(cfg, run.gen, run.sets, run.fitted, run.scores, run.model)
print(timing.line())
print(f"{len(table)} rows written to adaptive.csv in the results folder")

# %% [markdown]
# ## Evasion rate against the radius

# %%
fig = plots.adaptive_curves(
    table[~table.attack.str.contains("SPSA")], cfg["bim_eps"],
    title="Attacked images misclassified and accepted by the detector",
)
plots.save_figure(fig, cfg.results_dir / "adaptive.png");

# %% [markdown]
# ## Every attack, every radius (%)

# %%
shown = table[~table.attack.str.contains("SPSA")].copy()
shown["radius"] = shown.epsilon.map(lambda e: "unbounded" if e != e else f"{e:.3g}")
grid = shown.pivot_table(index=["detector", "attack"], columns="radius", values="evasion_rate",
                         sort=False)
grid.index = [f"{plots.method_label(d)}: {a}" for d, a in grid.index]
analysis.display_table(grid, 1)

# %% [markdown]
# ## What we see

# %%
eps = cfg["bim_eps"]
rates = analysis.adaptive_rates(table, eps)
net = rates.loc["introspection_net"]
text = (f"At Table 2's radius (ε = {eps:.3g}; the paper gives none), plain PGD, which ignores the "
        f"detector, gets {net.pgd:.1f} % of the attacked images past Introspection-Net; an "
        f"attacker who knows the detector gets {net.adaptive:.1f} %. Sanity checks: every rate "
        "grows with ε by construction (an evasion at a radius counts at every larger one); "
        f"unbounded, the best attack evades every detector on at least "
        f"{rates.unbounded.min():.1f} % of the images"
        + (" (close to 100 %, as it must be)." if rates.unbounded.min() >= 95 else
           " (below 100 %: the attacks are not strong enough to trust the small-ε rates as upper "
           "bounds on robustness)."))
spsa = table[table.attack == "joint_pgd (SPSA)"].evasion_rate
exact = table[table.attack == "joint_pgd (exact, SPSA subset)"].evasion_rate
if len(spsa) and len(exact):
    text += (f" Gradient-free SPSA reaches {spsa.iloc[0]:.1f} % on the subset where exact "
             f"gradients reach {exact.iloc[0]:.1f} %: "
             + ("the gradients are not obfuscated." if spsa.iloc[0] <= exact.iloc[0] + 5 else
                "SPSA does better, a sign of obfuscated gradients: the exact-gradient rates "
                "understate the attack."))
display(Markdown(text))
analysis.display_table(rates.set_axis([plots.method_label(m) for m in rates.index]).rename(
    columns={"pgd": "plain PGD at Table 2's ε (%)", "adaptive": "best adaptive attack at Table "
             "2's ε (%)", "unbounded": "best, unbounded (%)"}), 1)

# %% [markdown]
# :::{admonition} Try it yourself
# :class: tip
# More steps make every attack stronger; the rates at small ε should not fall:
#
# ```bash
# papermill book/11_adaptive.ipynb out.ipynb -p profile quick -p experiment mnist -p adaptive_steps 100
# ```
#
# For CIFAR-10, pass `-p experiment cifar10`.
# :::
