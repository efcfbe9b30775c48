"""Experiments, profiles and the validated configuration of a run (:func:`configure`).

A *profile* (:data:`PROFILES`) names the values of every parameter (:data:`PARAMETERS`) for
both experiments; ``-p NAME VALUE`` (papermill, ``python -m introspection build``) overrides one.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .artifacts import library_versions

__all__ = [
    "EXPERIMENTS", "PARAMETERS", "PROFILES", "STAGES", "REVISIONS", "KEY_LIBRARIES", "key_versions",
    "Config", "configure", "ConfigError", "default_results_dir", "published_weights_dir",
]  # fmt: skip

#: Misclassification kinds generated from in-distribution test images.
ATTACKS = ("errors", "bim", "fgsm", "deepfool")

#: The two experiments of the paper: in-distribution data, image shape, OOD sets.
EXPERIMENTS: dict[str, dict] = {
    "mnist": {"in_distribution": "mnist", "image_shape": (28, 28, 1), "model": "paper_cnn",
              "cross_dataset": "cifar10",
              "datasets": ["mnist", *ATTACKS, "gaussian", "uniform", "cifar10", "fashion_mnist"]},
    "cifar10": {"in_distribution": "cifar10", "image_shape": (32, 32, 3), "model": "wide_resnet",
                "cross_dataset": "mnist",
                "datasets": ["cifar10", *ATTACKS, "gaussian", "uniform", "mnist", "fashion_mnist"]},
}  # fmt: skip

#: Every random stream of a run after the base classifier, by name (:meth:`Config.stream`).
#: Each is drawn from ``numpy.random.SeedSequence(seed, spawn_key=(crc32(name), k[, draw]))``:
#: streams are independent of each other, and adding one leaves the others' draws unchanged;
#: a ``draw`` above 0 (:meth:`Config.redraw`) redraws them all (chapter 10). The base
#: classifier's own draws (training subset, weights, augmentation, batch order) use the seed
#: itself, as the committed weights were trained with.
STREAMS = {
    "source_partition": "source images: training side / test side",
    "source_order": "the order in which each side's sources are used",
    "patches_train": "patch positions on the training side",
    "patches_test": "patch positions on the test side",
    "gaussian": "the Gaussian noise images", "uniform": "the uniform noise images",
    "ood_pick": "which test images of the other datasets are used",
    "splits": "Section 3.2's training, validation and test sets",
    "introspection_net": "Introspection-Net's weights and data order (k: chapter 10's k-th net)",
    "trust_fit": "the training images the Trust Score is fitted on",
    "bootstrap": "the bootstrap resamples of Table 2's intervals",
    "detector_fit": "the training images the detectors beyond the paper fit on",
    "pgd_start": "PGD's random start (chapter 9)",
    "adaptive_targets": "the target images of the adaptive attacks",
    "adaptive_restarts": "the adaptive attacks' random starts",
    "patched_positives": "the patches of chapter 12's patched test set",
}  # fmt: skip

#: Stages in order (the last five beyond the paper); each one's artifacts depend on the
#: parameters of its own and earlier stages.
STAGES = (
    "base_model", "misclassifications", "logit_analysis", "introspection_net", "evaluation",
    "detectors", "unseen", "seeds", "adaptive", "protocol",
)  # fmt: skip
_B, _M, _L, _N, _E, _D, _U, _S, _A, _P = STAGES  # short names for the tables below

#: The stages whose results each stage depends on (itself included): a chain, with the
#: logit analysis branching off after the misclassifications, the last five after evaluation.
_CHAIN = (_B, _M, _N, _E)
DEPENDS_ON = {_B: _CHAIN[:1], _M: _CHAIN[:2], _L: (*_CHAIN[:2], _L), _N: _CHAIN[:3], _E: _CHAIN,
              **{stage: (*_CHAIN, stage) for stage in STAGES[5:]}}  # fmt: skip

#: Revision of each stage's code: bump it with any change that alters its results, so that
#: its cached artifacts and those downstream are recomputed.
REVISIONS: dict[str, int] = {
    "base_model": 3, "misclassifications": 2, "logit_analysis": 1, "introspection_net": 1,
    "evaluation": 1, "detectors": 1, "unseen": 3, "seeds": 1, "adaptive": 1, "protocol": 1,
}  # fmt: skip

#: Libraries whose installed versions are part of every stage's key: the same code on
#: another TensorFlow, Keras, scikit-learn or NumPy may give other numbers.
KEY_LIBRARIES = ("numpy", "tensorflow", "keras", "scikit-learn", "cleverhans")


def key_versions() -> dict[str, str]:
    """Installed versions of :data:`KEY_LIBRARIES` (any TensorFlow build; else ``"absent"``)."""
    installed = library_versions()
    installed["tensorflow"] = installed.get("tensorflow-cpu") or installed.get("tensorflow")
    return {lib: installed.get(lib) or "absent" for lib in KEY_LIBRARIES}


_UNSET = object()


def _p(type_, default, stage, help_, allowed=None, lo=_UNSET, hi=None, only=None, neutral=_UNSET):
    """One row of :data:`PARAMETERS`.

    ``default``: both experiments' value (``_UNSET``: each its own) unless a profile sets
    another; None where the parameter may be null. ``lo``/``hi``: the inclusive range (default:
    an int from 1, a float from 0.0). ``only``: the one experiment the parameter applies to (left
    out of the other's stage keys). ``neutral``: left out of the stage keys at this value, the
    behaviour from before the parameter existed, so that cached artifacts stay valid.
    """
    lo = {int: 1, float: 0.0}.get(type_) if lo is _UNSET else lo
    return {"type": type_, "default": default, "stage": stage, "only": only, "neutral": neutral,
            "help": help_, "allowed": allowed, "min": lo, "max": hi,
            "nullable": default is None}  # fmt: skip


#: Every tunable parameter: type, default, the stage that first uses it, its meaning and range.
PARAMETERS: dict[str, dict] = {
    "n_train": _p(int, None, _B, "training images of the base classifier (null = all)"),
    "epochs": _p(int, _UNSET, _B, "training epochs of the base classifier"),
    "batch_size": _p(int, _UNSET, _B, "minibatch size of the base classifier"),
    "optimizer": _p(str, _UNSET, _B, "optimizer", allowed=("rmsprop", "sgd", "adam")),
    "learning_rate": _p(float, _UNSET, _B, "learning rate (warmup_cosine: its peak)"),
    "schedule": _p(str, _UNSET, _B, "learning-rate schedule (warmup_cosine: linear warm-up from "
        "0.2 x the rate over the first 23 % of the steps, then cosine decay to 0.07 x)",
        allowed=("constant", "cosine", "step", "warmup_cosine")),
    "augment": _p(bool, True, _B, "use the paper's data augmentation"),
    "precision": _p(str, "auto", _B, "arithmetic of the base classifier's training: auto "
        "(mixed_bfloat16 where the CPU has AMX or AVX-512 BF16, else float32), float32 or "
        "mixed_bfloat16; the trained model is float32",
        allowed=("auto", "float32", "mixed_bfloat16")),
    "architecture": _p(str, "wide_resnet", _B, "CIFAR-10 classifier: wide_resnet (WRN-depth-width, "
        "the paper's family) or airbench (airbench94's fast network, with ReLU)",
        allowed=("wide_resnet", "airbench"), only="cifar10"),
    "momentum": _p(float, 0.9, _B, "Nesterov momentum of SGD", hi=0.999, only="cifar10"),
    "bias_lr_scale": _p(float, 1.0, _B, "factor of SGD's learning rate for the batch-normalisation "
        "biases (airbench: 64)", only="cifar10"),
    "kernel_init": _p(str, "torch", _B, "airbench's initial kernels: torch (PyTorch's default, as "
        "airbench94) or keras (Glorot uniform)", allowed=("torch", "keras"), only="cifar10"),
    "crop_pad": _p(int, 4, _B, "pixels of the random-translation padding (CIFAR-10)",
        only="cifar10"),
    "crop_fill": _p(str, "zeros", _B, "how the padding is filled: zeros or reflect",
        allowed=("zeros", "reflect"), only="cifar10"),
    "lookahead": _p(bool, False, _B, "airbench's Lookahead: the weights move to their running "
        "average every 5 steps", only="cifar10"),
    "wrn_depth": _p(int, 16, _B, "Wide ResNet depth (CIFAR-10; 6n+4)", lo=10),
    "wrn_width": _p(int, 2, _B, "Wide ResNet widening factor (CIFAR-10)"),
    "wrn_dropout": _p(float, 0.0, _B, "Wide ResNet dropout rate", hi=0.9),
    "weight_decay": _p(float, 5e-4, _B, "weight decay of the CIFAR-10 classifier (L2)"),
    "n_source": _p(int, None, _M, "in-distribution test images used as the pool of sources "
        "(null = all)", lo=2),
    "train_fraction": _p(float, 0.5, _M, "fraction of source images on Introspection-Net's "
        "training side", hi=1.0),
    "n_train_in": _p(int, 5000, _M, "in-distribution examples for Introspection-Net training "
        "(paper: 5000)"),
    "n_train_other": _p(int, 700, _M, "examples of every other dataset for training (paper: 700)"),
    "n_test": _p(int, 2000, _M, "test examples of every dataset (paper: 2000)"),
    "patch_size": _p(int, 7, _M, "side of the black square of 'errors'"),
    "patch_max_tries": _p(int, 50, _M, "patch positions tried per image"),
    "patch_max_per_source": _p(int, None, _M, "patch errors kept per source image (null = one per "
        "error position found)", neutral=None),
    "patch_fill": _p(str, "zero", _M, "value of the patch: zero (black in pixels) or mean (0 after "
        "standardisation: the training images' channel means)", allowed=("zero", "mean"),
        neutral="zero"),
    "fgsm_eps": _p(float, 0.3, _M, "FGSM L-inf budget, pixel scale [0, 1]", hi=1.0),
    "bim_eps": _p(float, 0.3, _M, "BIM L-inf budget, pixel scale [0, 1]", hi=1.0),
    "bim_eps_iter": _p(float, 0.03, _M, "BIM step size, pixel scale [0, 1]", hi=1.0),
    "bim_nb_iter": _p(int, 20, _M, "BIM iterations"),
    "bim_early_stop": _p(bool, False, _M, "BIM stops moving an image once it is misclassified",
        neutral=False),
    "attack_loss": _p(str, "logits", _M, "what FGSM's and BIM's cross-entropy reads: the logits, "
        "or the probabilities taken as logits (a cleverhans-v3 wrapper pitfall)",
        allowed=("logits", "probabilities"), neutral="logits"),
    "deepfool_overshoot": _p(float, 0.02, _M, "DeepFool overshoot"),
    "deepfool_max_iter": _p(int, 50, _M, "DeepFool maximum iterations"),
    "gaussian_mean": _p(float, 0.5, _M, "mean of the Gaussian noise images", hi=1.0),
    "gaussian_std": _p(float, 0.25, _M, "std of the Gaussian noise images"),
    "n_analysis": _p(int, 1000, _L, "examples per dataset in Figure 1 (paper: 1000)", lo=2),
    "n_scatter": _p(int, 300, _L, "examples per dataset in Figure 2 (paper: 300)"),
    "val_fraction": _p(float, 0.1, _N, "validation fraction (paper: 0.1)", hi=0.9),
    "introspection_epochs": _p(int, 60, _N, "Introspection-Net epochs (paper: 60)"),
    "introspection_batch_size": _p(int, 32, _N, "Introspection-Net batch size"),
    # float32 by default, as Keras computes the softmax (chapter 12's protocol study).
    "softmax_dtype": _p(str, "float32", _N, "arithmetic of the Softmax Baseline: float64, or "
        "float32 as Keras' softmax layer", allowed=("float64", "float32"), neutral="float64"),
    "trust_feature": _p(str, "features", _N, "Trust Score feature space",
        allowed=("features", "logits", "pixels")),
    "trust_alpha": _p(float, 0.1, _N, "Trust Score density-filtering fraction", hi=0.99),
    "trust_k": _p(int, 10, _N, "Trust Score k of the density filter"),
    "trust_n_fit": _p(int, 10000, _N, "base-training images the Trust Score is fitted on", lo=10),
    "n_boot": _p(int, 1000, _E, "bootstrap resamples of the 95% CIs (0 = none)", lo=0),
    "detector_n_fit": _p(int, 10000, _D, "base-training images the Mahalanobis class means and "
        "covariance are fitted on", lo=10),
    "odin_temperature": _p(float, 1000.0, _D, "ODIN softmax temperature T", lo=1e-6),
    "odin_eps": _p(float, 0.0014, _D, "ODIN input pre-processing step, pixel scale [0, 1]", hi=1.0),
    "mahalanobis_eps": _p(float, 0.0014, _D, "Mahalanobis input pre-processing step, pixel scale "
        "[0, 1]", hi=1.0),
    "unseen_n": _p(int, 1000, _U, "test-side source images attacked with CW-L2 and PGD (never "
        "trained on)"),
    "cw_binary_steps": _p(int, 3, _U, "CW-L2 bisection steps on the constant c"),
    "cw_max_iter": _p(int, 300, _U, "CW-L2 Adam steps per bisection step"),
    "cw_lr": _p(float, 0.05, _U, "CW-L2 Adam learning rate (tanh space)", lo=1e-6),
    "cw_lr_schedule": _p(str, "constant", _U, "CW-L2 step size within each bisection step: "
        "constant, or cosine decay to zero", allowed=("constant", "cosine")),
    "adaptive_n": _p(int, 300, _A, "test-side source images attacked by the adaptive attacks"),
    "adaptive_steps": _p(int, 40, _A, "PGD steps per run of the adaptive attacks"),
    "adaptive_restarts": _p(int, 2, _A, "runs per setting (the first from the image, then random)"),
    "spsa_n": _p(int, 50, _A, "images of the gradient-free (SPSA) check"),
    "spsa_samples": _p(int, 32, _A, "SPSA perturbation pairs per step"),
    "n_seeds": _p(int, 5, _S, "Introspection-Net trainings with different seeds", lo=2),
    "n_draws": _p(int, 5, _S, "runs with every random draw after the base classifier made "
        "again (1: only the published one)"),
}  # fmt: skip

# The recipe of each experiment's classifier (Section 2.1; Zagoruyko & Komodakis 2016)
# and its attack budgets (L-inf 0.3 on MNIST, BIM 0.1; 8/255 on CIFAR-10).
_EXPERIMENT_DEFAULTS = {
    "mnist": {
        "epochs": 30, "batch_size": 64, "optimizer": "rmsprop", "learning_rate": 1e-3,
        "schedule": "cosine",
        # Calibrated to Section 2.3's BIM max logits, 10.8 +- 5.2 (chapter 12): eps 0.3
        # gave 28.0 +- 7.0, eps 0.1 gives 11.8 +- 3.9.
        "bim_eps": 0.1, "bim_eps_iter": 0.01,
    },
    "cifar10": {
        "epochs": 200, "batch_size": 128, "optimizer": "sgd", "learning_rate": 0.1,
        "schedule": "step", "wrn_depth": 28, "wrn_width": 8,
        "fgsm_eps": 8 / 255, "bim_eps": 8 / 255, "bim_eps_iter": 1 / 255, "patch_max_tries": 20,
        # A constant Adam step leaves a noise floor of about one step per pixel, large
        # against CIFAR-10's small minimal perturbations (book/methods.md, chapter 9).
        "cw_lr_schedule": "cosine",
    },
}  # fmt: skip

# Sizes shared by both experiments in the smoke profile, then in the quick one.
_SMALL_SETS = {
    "n_source": 1000, "n_train_in": 200, "n_train_other": 40, "n_test": 100, "n_analysis": 100,
    "n_scatter": 100, "bim_nb_iter": 10, "introspection_epochs": 10, "trust_n_fit": 1000,
    "n_boot": 100, "detector_n_fit": 1000, "n_seeds": 2, "n_draws": 2, "unseen_n": 100,
    "cw_binary_steps": 2, "cw_max_iter": 30, "adaptive_n": 40, "adaptive_steps": 10,
    "adaptive_restarts": 1, "spsa_n": 10, "spsa_samples": 8,
}  # fmt: skip
_REDUCED_SETS = {
    "n_train": 20000, "introspection_epochs": 20, "trust_n_fit": 3000, "n_boot": 200,
    "detector_n_fit": 3000, "n_seeds": 3, "n_draws": 2, "cw_binary_steps": 2, "cw_max_iter": 100,
    "adaptive_restarts": 1, "spsa_n": 10, "spsa_samples": 16,
}  # fmt: skip

#: Profiles: per experiment, the values that differ from the defaults.
PROFILES: dict[str, dict] = {
    "smoke": {
        "description": "whole pipeline on tiny subsets; minutes on 2 cores (CI, first look)",
        "mnist": {**_SMALL_SETS, "n_train": 3000, "epochs": 1},
        "cifar10": {
            **_SMALL_SETS, "n_train": 4000, "epochs": 2, "wrn_depth": 10, "wrn_width": 1,
            "optimizer": "adam", "learning_rate": 2e-3, "schedule": "cosine",
            "deepfool_max_iter": 20,
        },
    },
    "quick": {
        "description": "real data, reduced sizes: a rough but meaningful book within "
        "about 20 minutes on 2 cores (a teacher's laptop, no native bfloat16)",
        # Sized for a CPU without native bfloat16 (float32 training; AMD EPYC, AVX2 only).
        "mnist": {
            **_REDUCED_SETS, "epochs": 2, "n_train_in": 1000, "n_train_other": 200, "n_test": 400,
            "n_analysis": 400, "unseen_n": 200, "adaptive_n": 60, "adaptive_steps": 20,
        },
        "cifar10": {
            **_REDUCED_SETS, "epochs": 4, "wrn_depth": 10, "wrn_width": 1, "schedule": "cosine",
            "learning_rate": 0.05, "n_source": 4000, "n_train_in": 800, "n_train_other": 150,
            "n_test": 300, "n_analysis": 300, "deepfool_max_iter": 30, "unseen_n": 150,
            "adaptive_n": 50, "adaptive_steps": 15,
        },
    },
    "cpu": {
        "description": "as faithful as a 2-core CPU allows in about two hours (both experiments)",
        # Beyond the paper, fewer images are attacked (wider intervals): a few hours on 2 cores.
        # CIFAR-10's classifier is airbench94's network and recipe (benchmarks/cifar10_recipe.py).
        "mnist": {"unseen_n": 500, "adaptive_n": 200},
        "cifar10": {
            "architecture": "airbench", "epochs": 15, "batch_size": 1024, "optimizer": "sgd",
            # airbench94's decoupled hyperparameters (lr 11.5 and weight decay 0.0153
            # per 1024 images, momentum 0.85) in Keras' terms for the mean loss.
            "learning_rate": 1.5, "momentum": 0.85, "bias_lr_scale": 64.0,
            "weight_decay": 1.33e-3, "schedule": "warmup_cosine", "crop_pad": 2,
            "crop_fill": "reflect", "lookahead": True, "unseen_n": 300, "adaptive_n": 100,
            "adaptive_steps": 30, "spsa_n": 30,
        },
    },
    "paper": {
        "description": "the paper's settings, WRN-28-8 on CIFAR-10: for a GPU",
        "mnist": {}, "cifar10": {},
    },
}  # fmt: skip


class ConfigError(ValueError):
    """A parameter has a wrong type or value."""


def _check_value(name: str, value):
    """``value`` checked against its row of :data:`PARAMETERS` (int 2.0 is 2, float 2 is 2.0)."""
    spec, typ = PARAMETERS[name], PARAMETERS[name]["type"]
    if value is None:
        if spec["nullable"]:
            return None
        raise ConfigError(f"Parameter {name!r} may not be null ({spec['help']}).")
    is_bool = isinstance(value, bool)
    if typ is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    elif typ is float and isinstance(value, (int, float)) and not is_bool:
        value = float(value)
    if not isinstance(value, typ) or (typ is int and is_bool):
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[typ]
        raise ConfigError(f"Parameter {name!r} must be {kind}, got {value!r}.")
    if spec["allowed"] is not None:
        _check_one_of(name, value, spec["allowed"])
    if spec["min"] is not None and value < spec["min"]:
        raise ConfigError(f"Parameter {name!r} must be >= {spec['min']}, got {value!r}.")
    if spec["max"] is not None and value > spec["max"]:
        raise ConfigError(f"Parameter {name!r} must be <= {spec['max']}, got {value!r}.")
    return value


def _check_one_of(name: str, value, known) -> None:
    if value not in known:
        choices = ", ".join(map(str, known))
        raise ConfigError(f"Parameter {name!r} must be one of {choices}; got {value!r}.")


def _repo_root() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() and (here / "_toc.yml").is_file() else None


def default_results_dir(profile: str, experiment: str | None = None) -> Path:
    """Where a profile's results go: ``book/results/<profile>[/<experiment>]``."""
    root = (_repo_root() or Path.cwd()) / "book" / "results" / profile
    return root / experiment if experiment else root


def published_weights_dir(profile: str, experiment: str) -> Path | None:
    """A profile's published classifier, ``weights/<profile>/<experiment>`` (None: no checkout)."""
    root = _repo_root()
    return root / "weights" / profile / experiment if root else None


@dataclass(frozen=True)
class Config:
    """The effective configuration of one run of one experiment.

    Attributes
    ----------
    data_dir : str or None
        Folder of the ``.npz`` dataset files (None: ``$INTROSPECTION_DATA_DIR``).
    artifacts_dir, results_dir : pathlib.Path
        The cache of arrays and models; where figures, tables and the summary go.
    params, overrides : dict
        Every parameter of :data:`PARAMETERS`, validated; those that differ from the profile.
    draw : int
        Which draw of the random streams (:meth:`redraw`); 0 is the published run's.
    """

    experiment: str
    profile: str
    seed: int
    data_dir: str | None
    artifacts_dir: Path
    results_dir: Path
    params: dict = field(repr=False)
    overrides: dict = field(default_factory=dict)
    draw: int = 0

    def __getitem__(self, name):
        return self.params[name]

    @property
    def info(self) -> dict:
        """The experiment's fixed description (datasets, image shape, model)."""
        return EXPERIMENTS[self.experiment]

    @property
    def precision(self) -> tuple[str, str]:
        """The base classifier's training arithmetic on this machine, and why.

        ``"auto"`` is resolved here, not in the stage keys: weights move between machines.
        """
        from .hardware import choose_precision

        return choose_precision(self.params["precision"])

    def stream(self, name: str, k: int = 0) -> int:
        """The seed of the random stream ``name`` (:data:`STREAMS`), its ``k``-th if several.

        >>> cfg = configure("mnist", "smoke")
        >>> cfg.stream("gaussian") != cfg.stream("uniform")
        True
        """
        if name not in STREAMS:
            raise KeyError(f"Unknown random stream {name!r}; expected one of {list(STREAMS)}.")
        key = (zlib.crc32(name.encode()), int(k), *([self.draw] if self.draw else []))
        state = np.random.SeedSequence(self.seed, spawn_key=key).generate_state(1)[0]
        return int(state) >> 1  # below 2**31: a valid seed for NumPy, Keras and TensorFlow

    def redraw(self, draw: int) -> Config:
        """The run with draw ``draw`` of every random stream (0: this run), cached apart.

        Its artifacts go to ``draws/<draw>`` of this run's, its results beside them.
        """
        if draw == 0:
            return self
        scratch = self.artifacts_dir / "draws" / str(draw)
        (scratch / "results").mkdir(parents=True, exist_ok=True)
        return replace(self, draw=draw, artifacts_dir=scratch, results_dir=scratch / "results")

    @property
    def bim_step(self) -> float:
        """BIM's step size: ``bim_eps_iter``, or ``bim_eps / 10`` when it is 0."""
        return self.params["bim_eps_iter"] or self.params["bim_eps"] / 10

    def stage_params(self, stage: str) -> dict:
        """Parameters that determine a stage's results: its own and its upstream stages'.

        With the experiment, the seed, the stages' code :data:`REVISIONS` and the versions of
        :data:`KEY_LIBRARIES`: the key of the stage's artifacts and of the chapters' freshness.
        """
        if stage not in STAGES:
            raise ValueError(f"Unknown stage {stage!r}; expected one of {STAGES}.")
        upto = DEPENDS_ON[stage]
        out = {"experiment": self.experiment, "seed": self.seed}
        out |= {"draw": self.draw} if self.draw else {}
        out |= {"revisions": {s: REVISIONS[s] for s in upto}, "versions": key_versions()}
        for k, v in self.params.items():
            spec = PARAMETERS[k]  # a parameter without a neutral value (_UNSET) never equals it
            applies = spec["stage"] in upto and spec["only"] in (None, self.experiment)
            if applies and v != spec["neutral"]:
                out[k] = v
        return out

    def table(self, stage: str | None = None):
        """The configuration as a DataFrame (parameter, value, meaning), or one ``stage``'s own."""
        import pandas as pd

        rows = [("experiment", self.experiment, "in-distribution dataset"),
                ("profile", self.profile, PROFILES[self.profile]["description"]),
                ("seed", self.seed, "seed of every random choice")]  # fmt: skip
        arch = self.params["architecture"]
        for k, v in self.params.items():
            spec = PARAMETERS[k]
            if spec["only"] not in (None, self.experiment) or stage not in (None, spec["stage"]):
                continue
            mark = " (overridden)" if k in self.overrides else ""
            if k.startswith("wrn_") and arch != "wide_resnet":
                mark += f" (not used by {arch})"
            elif k.startswith("wrn_") and self.experiment != "cifar10":
                continue
            meaning = spec["help"] + mark
            if k == "precision":  # what this machine would train in, and why
                chosen, reason = self.precision
                v, meaning = f"{v} → {chosen}", f"training arithmetic here ({reason})" + mark
            rows.append((k, v, meaning))
        return pd.DataFrame(rows, columns=["parameter", "value", "meaning"]).set_index("parameter")


def configure(experiment: str = "mnist", profile: str = "quick", *, seed: int = 0,
              data_dir=None, artifacts_dir=None, results_dir=None, overrides=None,
              **params) -> Config:  # fmt: skip
    """Resolve a profile and overrides into a validated Config; raise ConfigError if invalid.

    Parameters
    ----------
    experiment : {"mnist", "cifar10"}
    profile : {"smoke", "quick", "cpu", "paper"}
    data_dir : str or path-like, optional
        Folder of ``mnist.npz``, ``fashion_mnist.npz``, ``cifar10.npz``; must exist.
    artifacts_dir : str or path-like, optional
        Cache root (``$INTROSPECTION_ARTIFACTS_DIR``, else ``artifacts/``) of the run's
        ``<experiment>/<profile>`` folder.
    results_dir : str or path-like, optional
        Default ``book/results/<profile>/<experiment>``.
    overrides : mapping, optional
        Values of parameters of :data:`PARAMETERS` (e.g. the build's ``-p`` pairs).
    **params
        Same, winning over ``overrides``; None means the profile's value, ``"null"`` null.
    """
    _check_one_of("experiment", experiment, EXPERIMENTS)
    _check_one_of("profile", profile, PROFILES)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"Parameter 'seed' must be a non-negative integer, got {seed!r}.")
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(f"Parameter 'overrides' must be a mapping, got {overrides!r}.")
    given = {**(overrides or {}), **{k: v for k, v in params.items() if v is not None}}
    for name in given:
        if name not in PARAMETERS:
            known = ", ".join(sorted(PARAMETERS))
            raise ConfigError(f"Unknown parameter {name!r}. Known parameters: {known}.")
    given = {k: None if v == "null" else v for k, v in given.items() if v is not None}
    defaults = {name: spec["default"] for name, spec in PARAMETERS.items()}
    defaults |= {**_EXPERIMENT_DEFAULTS[experiment], **PROFILES[profile][experiment]}
    values = {name: _check_value(name, given.get(name, defaults[name])) for name in PARAMETERS}
    _check_consistency(experiment, values)
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser())
        if not Path(data_dir).is_dir():
            raise ConfigError(f"Parameter 'data_dir': {data_dir} is not a directory.")
    root = _repo_root()
    cache = root / "artifacts" if root else Path.home() / ".cache" / "introspection"
    art = Path(artifacts_dir or os.environ.get("INTROSPECTION_ARTIFACTS_DIR") or cache)
    art = art.expanduser() / experiment / profile
    _check_writable(art, "artifacts_dir")
    res = Path(results_dir or default_results_dir(profile, experiment)).expanduser()
    _check_writable(res, "results_dir")
    changed = {k: v for k, v in given.items() if v != defaults.get(k)}
    return Config(experiment, profile, seed, data_dir, art, res, values, changed)


def _check_consistency(experiment: str, p: dict) -> None:
    """Check the values of the parameters against each other and the datasets' sizes."""
    n_pool = p["n_source"] or 10000
    n_train_side = round(p["train_fraction"] * n_pool)
    n_test_side = n_pool - n_train_side
    sides = (("n_train_in", n_train_side, "training side (n_source x train_fraction)"),
             ("n_test", n_test_side, "test side (n_source x (1 - train_fraction))"),
             ("unseen_n", n_test_side, "test side (n_source x (1 - train_fraction))"))  # fmt: skip
    rules = [
        ((p["wrn_depth"] - 4) % 6 != 0,
         f"Parameter 'wrn_depth' must be 6n+4 (10, 16, 22, 28...), got {p['wrn_depth']}."),
        (p["bim_eps_iter"] > p["bim_eps"], "Parameter 'bim_eps_iter' must not exceed 'bim_eps'."),
        (not 0.0 < p["train_fraction"] < 1.0,
         "Parameter 'train_fraction' must be strictly between 0 and 1."),
        *((p[k] > n, f"Parameter {k!r} ({p[k]}) exceeds the {n} source images on the {side}.")
          for k, n, side in sides),
        (max(p["adaptive_n"], p["spsa_n"]) > n_test_side,
         "Parameters 'adaptive_n' and 'spsa_n' must not exceed the "
         f"{n_test_side} source images on the test side."),
        (p["spsa_n"] > p["adaptive_n"], "Parameter 'spsa_n' must not exceed 'adaptive_n'."),
        (p["n_source"] is not None and p["n_source"] > 10000,
         "Parameter 'n_source' must be <= 10000 (the size of the test set)."),
        (p["n_train"] is not None and p["n_train"] > (60000 if experiment == "mnist" else 50000),
         "Parameter 'n_train' exceeds the size of the training set."),
        (p["n_analysis"] > p["n_test"],
         f"Parameter 'n_analysis' ({p['n_analysis']}) must be <= n_test ({p['n_test']}): "
         "the analysis uses test examples."),
    ]  # fmt: skip
    for bad, message in rules:
        if bad:
            raise ConfigError(message)


def _check_writable(path: Path, name: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"Parameter {name!r}: cannot write to {path} ({err.strerror}).") from None
