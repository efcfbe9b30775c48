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
import json
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from introspection import analysis, config, pipeline, plots

root = Path(results_root) if results_root else config.default_results_dir(profile)
found = {e: root / e for e in config.EXPERIMENTS if (root / e / "table2.csv").is_file()}
tables = {e: pd.read_csv(d / "table2.csv") for e, d in found.items()}
summaries = {e: json.loads((d / "summary.json").read_text()) for e, d in found.items()}
print(f"profile {profile!r}: results for {', '.join(found) or 'no experiment'} in {root}")

# %% [markdown]
# ## Base classifiers and run times

# %%
pd.DataFrame({
    e: {
        "test accuracy (%)": round(100 * s["base_accuracy"], 2),
        "paper (%)": (100 * analysis.PAPER_ACCURACY[e] if analysis.PAPER_ACCURACY[e] else "n/a"),
        **{f"{k} (s)": round(v, 1) for k, v in s["wall_seconds"].items()},
        "CPU": s["machine"]["cpu"],
        "cores": s["machine"]["cores"],
    }
    for e, s in summaries.items()
})

# %% [markdown]
# ## AUROC of every method, ours and the paper's

# %%
paper = pipeline.paper_table2()
wide = []
for e, t in tables.items():
    d = analysis.compare_with_paper(t, paper)
    d = d[d.metric == "auroc"].assign(experiment=e)
    wide.append(d)
auroc = pd.concat(wide) if wide else pd.DataFrame()
if len(auroc):
    view = auroc.assign(
        ours=auroc.apply(lambda r: f"{r.ours:.1f} [{r.lo:.1f}, {r.hi:.1f}]", axis=1),
        method=auroc.method.map(plots.METHOD_LABELS),
    ).pivot(index=["experiment", "dataset"], columns="method", values=["ours", "paper"])
    display(view)

# %% [markdown]
# ## The claims, per experiment

# %%
for e, t in tables.items():
    display(Markdown(f"**{e}**\n\n" + analysis.claims_markdown(analysis.claims(t, e))))

# %% [markdown]
# ## What we see

# %%
lines = []
for e, t in tables.items():
    c = analysis.claims(t, e)
    d = analysis.compare_with_paper(t, paper)
    a = d[d.metric == "auroc"]
    lines.append(
        f"- **{e}** ({summaries[e]['profile']} profile, base accuracy "
        f"{100 * summaries[e]['base_accuracy']:.2f} %): {int((c.verdict == 'reproduced').sum())} "
        f"of {len(c)} claims reproduced; mean |AUROC − paper| = {a.difference.abs().mean():.1f} "
        f"points; paper outside our 95 % CI in {int(a.outside_ci.sum())} of {len(a)} cells."
    )
display(Markdown("\n".join(lines) if lines else "No experiment has been evaluated yet."))
