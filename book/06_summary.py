# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
# **The question.** Does the paper's conclusion — Introspection-Net "outperformed
# by a large margin the Softmax Baseline and the Trust Score on confidence
# prediction" (Section 4) — hold on both experiments? This page gathers the
# `table2.csv` and `summary.json` that the evaluation chapter wrote for each
# experiment of this profile.

# %% tags=["parameters"]
profile = "quick"  # the profile whose results are compared
results_root = None  # folder holding <experiment>/table2.csv (None: book/results/<profile>)

# %% [markdown]
# ## Set-up

# %%
from IPython.display import Markdown, display

from introspection import analysis, config, pipeline, plots

root = results_root or config.default_results_dir(profile)
tables, summaries = analysis.load_results(root)
paper = pipeline.paper_table2()
print(f"profile {profile!r}: results for {', '.join(tables) or 'no experiment'} in {root}")

# %% [markdown]
# ## Base classifiers and run times
#
# Wall time of each stage's last computation, in seconds, on the machine named.

# %%
analysis.runs_table(summaries)

# %% [markdown]
# ## AUROC of every method, ours (95 % CI) and the paper's

# %% tags=["full-width"]
analysis.auroc_side_by_side(tables, paper, plots.METHOD_LABELS)

# %% [markdown]
# ## The claims, per experiment

# %%
for experiment, table in tables.items():
    display(Markdown(f"**{experiment}**\n\n" + analysis.claims_markdown(analysis.claims(table, experiment))))

# %% [markdown]
# ## What we see

# %%
display(Markdown(analysis.summary_markdown(tables, summaries, paper)))
