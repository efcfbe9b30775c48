"""Adapted third-party code: cleverhans 4.0.0's Carlini-Wagner L2 attack, for Keras 3.

Used only by :func:`introspection.attacks.carlini_wagner_l2`. ``_attack`` is cleverhans'
code, changed in one place (one bisection constant per example), split into a method per
step, without its per-step bests (nothing reads them) and checks that cannot fail here.

cleverhans is distributed under the MIT licence, reproduced here:

    MIT License

    Copyright (c) 2019 Google Inc., OpenAI and Pennsylvania State University

    Permission is hereby granted, free of charge, to any person obtaining a copy
    of this software and associated documentation files (the "Software"), to deal
    in the Software without restriction, including without limitation the rights
    to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
    copies of the Software, and to permit persons to whom the Software is
    furnished to do so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
    IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
    FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
    AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
    LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
    OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
    SOFTWARE.
"""

from __future__ import annotations

import numpy as np

from .hardware import import_tensorflow

tf = import_tensorflow()  # before cleverhans imports it, without the start-up lines
from cleverhans.tf2.attacks.carlini_wagner_l2 import (  # noqa: E402
    CarliniWagnerL2 as _CleverhansCarliniWagnerL2,
)
from cleverhans.tf2.attacks.carlini_wagner_l2 import CarliniWagnerL2Exception  # noqa: E402
from cleverhans.tf2.utils import get_or_guess_labels, set_with_mask  # noqa: E402

__all__ = ["CarliniWagnerL2", "ResettableAdam"]


class ResettableAdam:
    """Keras 3 Adam with the ``variables()`` *method* cleverhans 4's CW-L2 calls.

    cleverhans zeroes ``optimizer.variables()`` before each bisection step; in Keras 3 that
    is a property that also holds the learning rate, which must not be zeroed. A cosine
    decay over ``decay_steps`` restarts with each step (its counter is zeroed too).
    """

    def __init__(self, learning_rate: float, decay_steps: int | None = None):
        import keras

        if decay_steps:
            learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
        self._opt = keras.optimizers.Adam(learning_rate)

    def apply_gradients(self, grads_and_vars):
        return self._opt.apply_gradients(grads_and_vars)

    def variables(self):
        lr = getattr(self._opt, "_learning_rate", None)
        return [v for v in self._opt.variables if v is not lr]


class CarliniWagnerL2(_CleverhansCarliniWagnerL2):
    """cleverhans 4's CW-L2 with a :class:`ResettableAdam` and a per-example constant.

    ``lr_schedule="cosine"`` (an addition) decays Adam's step. cleverhans 4 gives the
    bisection constant ``c`` the image batch's shape, which against per-example losses
    broadcasts into nonsense (grey images) or fails (colour ones).
    """

    def __init__(self, *args, lr_schedule: str = "constant", **kwargs):
        super().__init__(*args, **kwargs)
        decay = self.max_iterations if lr_schedule == "cosine" else None
        self.optimizer = ResettableAdam(self.learning_rate, decay_steps=decay)
        self._compare = tf.equal if self.targeted else tf.not_equal

    def _attack(self, x):
        if not np.all(tf.math.greater_equal(x, self.clip_min)):
            raise CarliniWagnerL2Exception(
                f"The input is smaller than the minimum value of {self.clip_min}r"
            )
        if not np.all(tf.math.less_equal(x, self.clip_max)):
            raise CarliniWagnerL2Exception(
                f"The input is greater than the maximum value of {self.clip_max}!"
            )
        y, _ = get_or_guess_labels(self.model_fn, x, y=self.y, targeted=self.targeted)
        original_x = tf.cast(x, tf.float32)
        shape = original_x.shape
        # [clip_min, clip_max] -> [0, 1] -> [-1, 1] -> tanh-space
        x = (original_x - self.clip_min) / (self.clip_max - self.clip_min)
        x = tf.atanh((tf.clip_by_value(x, 0.0, 1.0) * 2.0 - 1.0) * 0.999999)
        lab = tf.argmax(y, axis=1)
        lower = tf.zeros(shape[:1])
        upper = tf.ones(shape[:1]) * 1e10
        const = tf.ones(shape[:1]) * self.initial_const  # the fix: one per example
        # Each example's best attack so far: its squared L2 distance, prediction and image.
        best = tf.fill(shape[:1], 1e10), tf.cast(tf.fill(shape[:1], -1), tf.int32), original_x
        modifier = tf.Variable(tf.zeros(shape, dtype=x.dtype), trainable=True)
        for outer_step in range(self.binary_search_steps):
            # The last iteration (if we run many steps) repeat the search once.
            if self.binary_search_steps >= 10 and outer_step == self.binary_search_steps - 1:
                const = upper
            best = self._descend(x, y, lab, modifier, const, best)
            lower, upper, const = self._bisect(lab, best[1], lower, upper, const)
        return best[2]

    def _descend(self, x, y, lab, modifier, const, best):
        """One bisection step: Adam from zero, keeping each example's best attack."""
        best_l2, best_score, best_attack = best
        modifier.assign(tf.zeros(modifier.shape, dtype=x.dtype))
        for var in self.optimizer.variables():
            var.assign(tf.zeros(var.shape, dtype=var.dtype))
        prev = None
        for iteration in range(self.max_iterations):
            x_new, loss, preds, l2_dist = self.attack_step(x, y, modifier, const)
            if self.abort_early and iteration % ((self.max_iterations // 10) or 1) == 0:
                if prev is not None and loss > prev * 0.9999:
                    break
                prev = loss
            pred_with_conf = preds - self.confidence if self.targeted else preds + self.confidence
            pred_with_conf = tf.argmax(pred_with_conf, axis=1)
            pred = tf.cast(tf.argmax(preds, axis=1), tf.int32)
            mask = tf.less(l2_dist, best_l2) & self._compare(pred_with_conf, lab)
            best_l2 = set_with_mask(best_l2, l2_dist, mask)
            best_score = set_with_mask(best_score, pred, mask)
            mask = tf.tile(tf.reshape(mask, [-1, 1, 1, 1]), [1, *best_attack.shape[1:]])
            best_attack = set_with_mask(best_attack, x_new, mask)
        return best_l2, best_score, best_attack

    def _bisect(self, lab, best_score, lower, upper, const):
        """Adjust the binary search's bounds and constants after a step."""
        lab = tf.cast(lab, tf.int32)
        upper_mask = self._compare(best_score, lab) & tf.not_equal(best_score, -1)
        upper = set_with_mask(upper, tf.math.minimum(upper, const), upper_mask)
        const = set_with_mask(const, (lower + upper) / 2.0, upper_mask & tf.less(upper, 1e9))
        lower = set_with_mask(lower, tf.math.maximum(lower, const), ~upper_mask)
        const_mask = ~upper_mask & tf.less(upper, 1e9)
        const = set_with_mask(const, (lower + upper) / 2, const_mask)
        return lower, upper, set_with_mask(const, const * 10, ~const_mask)
