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
# # Results: both experiments side by side
#
# **The question.** Does the paper's conclusion hold? Section 4: Introspection-Net
# "outperformed by a large margin the Softmax Baseline and the Trust Score on
# confidence prediction", and the logits, unlike the softmax, carry the information
# to detect errors, out-of-distribution data and adversarial examples. This page
# gathers what the chapters of each experiment wrote for this profile
# (`table2.csv`, `summary.json`, `logit_tests.csv`, the figures) and checks every
# claim of Sections 2.3, 3.3 and 4.

# %% tags=["parameters"]
profile: str = "quick"  # the profile whose results are compared ("smoke", "quick", "cpu", "paper")
results_root: "str or None" = None  # folder holding <experiment>/table2.csv (None: book/results/<profile>)

# %% [markdown]
# ## Set-up

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from introspection import analysis, config, pipeline, plots

root = Path(results_root or config.default_results_dir(profile))
tables, summaries = analysis.load_results(root)
paper = pipeline.paper_table2()
print(f"profile {profile!r}: results for {', '.join(tables) or 'no experiment'}")

# %% [markdown]
# ## Base classifiers, run times and machine
#
# Test accuracy of the base classifier, and the wall time of each stage's last
# computation in seconds.

# %%
analysis.display_table(analysis.runs_table(summaries))

# %% [markdown]
# ## Table 2 against the paper
#
# Each cell: the paper's value → ours [95 % bootstrap CI] (difference). ⚠ and a bold
# difference mark the cells where the paper's value lies outside our interval.
# FPR at 95 % TPR: lower is better; the other metrics: higher is better.

# %% tags=["full-width"]
for experiment, table in tables.items():
    labels = {n: plots.dataset_label(n, experiment) for n in table.dataset.unique()}
    display(Markdown(f"### {experiment}\n\n"
                     + analysis.table2_vs_paper_markdown(table, paper, labels, plots.METHOD_LABELS)))

# %% [markdown]
# ## AUROC at a glance

# %% tags=["full-width"]
analysis.auroc_side_by_side(tables, paper, plots.METHOD_LABELS)

# %% [markdown]
# ## Figures 1 and 2, reproduced

# %%
for experiment in tables:
    for name in ("figure1_mean_logit.png", "figure2_min_max.png"):
        if (root / experiment / name).is_file():
            display(Markdown(f"**{experiment}**: `{name}`"), Image(filename=str(root / experiment / name)))

# %% [markdown]
# ## Claims checklist

# %%
checklists = {e: analysis.claims_for_experiment(root / e, t, e) for e, t in tables.items()}
for experiment, checks in checklists.items():
    display(Markdown(f"### {experiment}\n\n" + analysis.claims_markdown(checks)))

# %% [markdown]
# ## What we see

# %%
display(Markdown(analysis.summary_markdown(tables, summaries, paper, checklists)))

# %% [markdown]
# ## Beyond the paper
#
# The headline numbers of the chapters beyond the paper: eight detectors, kinds of
# misclassification left out of training, seeds, attacks nobody trained on, and an
# attacker who knows the detector.

# %%
paper_eps = {e: config.configure(e, profile)["bim_eps"] for e in tables}
analysis.beyond_table(root, tables, paper_eps)

# %% [markdown]
# ## What holds up

# %%
display(Markdown(analysis.what_holds_up(root, tables, paper_eps)))

# %% [markdown]
# ## Library versions

# %%
analysis.versions_table(summaries)
