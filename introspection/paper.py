"""The paper's reported numbers (Aigrain & Detyniecki, 2019, arXiv 1905.09186)."""

from pathlib import Path

__all__ = ["ACCURACY", "MAX_LOGIT", "MAX_SOFTMAX", "max_logit", "table2"]

#: Test accuracy of the base classifiers (Table 1; none for CIFAR-10).
ACCURACY = {"mnist": 0.9965, "cifar10": None}

#: Section 2.3: max logit, mean and standard deviation, MNIST experiment.
MAX_LOGIT = {"mnist": (16.5, 5.0), "bim": (10.8, 5.2), "fgsm": (8.8, 2.6), "deepfool": (3.4, 2.3)}

#: Section 3.3: mean max softmax probability (%) on CIFAR-10, DeepFool and clean images.
MAX_SOFTMAX = {"cifar10": {"deepfool": 54.0, "cifar10": 94.8}}


def max_logit(name: str, experiment: str):
    """Section 2.3's (mean, std) max logit of set ``name``, in the MNIST experiment only."""
    return MAX_LOGIT.get(name) if experiment == "mnist" else None


def table2(experiment: str | None = None):
    """The paper's Table 2 in percent (``data/paper_table2.csv``): all rows or one experiment's."""
    import pandas as pd

    df = pd.read_csv(Path(__file__).with_name("data") / "paper_table2.csv")
    return df if experiment is None else df[df.experiment == experiment].reset_index(drop=True)
