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

import pandas as pd
from IPython.display import Image, Markdown, display

from introspection import analysis, config, paper, plots, protocol

root = Path(results_root or config.default_results_dir(profile))
tables, summaries = analysis.load_results(root)
paper_table = paper.table2()
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
                     + analysis.table2_vs_paper_markdown(table, paper_table, labels, plots.METHOD_LABELS)))

# %% [markdown]
# ## Before and after the protocol study
#
# Table 2's cells (every metric) whose paper value lies inside our 95 % interval,
# and within 5 points of ours: under the book's defaults before the protocol study
# (chapter 12 runs them again, with intervals) and under the profile's, which
# adopted its readings.

# %%
moved = {e: protocol.before_after(pd.read_csv(root / e / "protocol.csv"), t)
         for e, t in tables.items() if (root / e / "protocol.csv").is_file()}
if moved:
    counts = pd.concat(moved, names=["experiment", "defaults"])
    total = counts.groupby(level="defaults", sort=False).sum()
    counts = pd.concat([counts, pd.concat({"both": total}, names=["experiment", "defaults"])])
    display(analysis.display_table(counts.rename(
        index={protocol.BEFORE: "before the study", protocol.OURS: "the profile (after)"},
        columns={"inside_ci": "inside our 95 % CI", "within": "within 5 points", "cells": "of"}),
        0))
    b, a = total.loc[protocol.BEFORE], total.loc[protocol.OURS]
    display(Markdown(
        f"Of the {a.cells:.0f} cells of Table 2 for {' and '.join(moved)}, the paper's value "
        f"lies inside our 95 % interval in **{a.inside_ci:.0f}** under the profile (before the "
        f"study: {b.inside_ci:.0f}) and within 5 points of ours in **{a.within:.0f}** (before: "
        f"{b.within:.0f})."))
else:
    print("No protocol study for this profile yet (chapter 12).")

# %% [markdown]
# ## AUROC at a glance

# %% tags=["full-width"]
analysis.auroc_side_by_side(tables, paper_table, plots.METHOD_LABELS)

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
rep = analysis.reproduction_summary(tables, summaries, paper_table, checklists)
display(Markdown("\n".join(
    f"- **{e}** ({r.profile} profile, base accuracy {r.base_accuracy:.2f} %): {r.reproduced} of "
    f"{r.claims} claims reproduced" + (f" ({r.partly} partly)" if r.partly else "")
    + f"; mean |AUROC − paper| = {r.mean_gap:.1f} points; the paper's value is outside our 95 % "
    f"CI in {r.outside_ci} of {r.cells} cells." for e, r in rep.iterrows())
    or "No experiment has been evaluated with this profile yet."))

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
held = analysis.adaptive_headline(root, tables, paper_eps)
parts = [
    f"**{e}**: in Table 2 Introspection-Net separates BIM and FGSM examples from clean images "
    f"with a mean AUROC of {r.auroc:.1f}, and plain PGD at Table 2's ε = {r.epsilon:.3g} gets "
    f"{r.pgd:.1f} % of its images past it. An attacker who knows it is there gets "
    f"{r.adaptive:.1f} % past it at the same ε (Softmax Baseline {r.softmax_adaptive:.1f} %, "
    f"Trust Score {r.trust_adaptive:.1f} %)." for e, r in held.iterrows()]
if len(held):
    broken = [f"{e}: {r:.1f} %" for e, r in held.pgd.items() if r >= 10]
    kept = [e for e, r in held.pgd.items() if r < 10]
    if broken:
        parts.append("Even an attack that ignores the detector, plain PGD, gets past "
                     f"Introspection-Net on {', '.join(broken)} of its images"
                     + (f" (it does not on {', '.join(kept)})" if kept else "")
                     + "; Table 2 says nothing about an attacker who knows it.")
    else:
        parts.append("The paper's detection results hold against an attack that ignores the "
                     f"detector (plain PGD gets at most {held.pgd.max():.1f} % past "
                     "Introspection-Net); Table 2 says nothing about an attacker who knows it.")
    for e, r in held.iterrows():
        parts.append(
            f"On {e}, Introspection-Net adds no robustness against a white-box adversary at "
            "Table 2's budget: the pattern Carlini & Wagner (2017) found for the detectors of "
            "their time." if r.adaptive >= 90 else
            f"On {e}, against an attacker who knows it, it still stops {100 - r.adaptive:.1f} % "
            "of the attacked images at Table 2's budget (within the strength of the attacks run "
            "here; the sanity checks of the adaptive chapter say how far to trust that).")
display(Markdown(" ".join(parts) or "No adaptive-attack results for this profile."))

# %% [markdown]
# ## Library versions

# %%
analysis.versions_table(summaries)
