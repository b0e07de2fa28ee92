"""Knowledge distillation (Hinton et al.): a student learns from a teacher's softened outputs mixed
with the true labels. loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T),
where x_T is the softmax of log-probabilities / T. The teacher is a model of ours (any family, from the
registry), run in inference mode; only the student is trained and exported.
"""
from typing import Any, Mapping

import tensorflow as tf
import tf_keras as keras

EPSILON = 1e-7
LOSS_NAMES = ("loss", "student_loss", "distillation_loss")  # training reports all three; evaluation the first


def _class_probabilities(output: tf.Tensor) -> tf.Tensor:
    """[batch, classes] probabilities; a sigmoid's [batch, 1] becomes [1 - p, p]."""
    output = tf.cast(output, tf.float32)
    if output.shape[-1] == 1:
        return tf.concat([1.0 - output, output], axis=-1)
    return output


def softened(probabilities: tf.Tensor, temperature: float) -> tf.Tensor:
    logits = tf.math.log(tf.clip_by_value(probabilities, EPSILON, 1.0)) / temperature
    return tf.nn.softmax(logits, axis=-1)


class Distiller(keras.Model):
    """Trains ``student`` on the distillation loss; evaluates it on the true labels alone (so early
    stopping watches the student's own loss). Only the student's weights change. Its losses are means
    over the epoch or the evaluation set, as a compiled loss's are: a custom step that returns a
    batch's loss reports the last batch alone, and early stopping then restores a wrong epoch."""

    def __init__(self, student: keras.Model, teacher: keras.Model, temperature: float, alpha: float,
                 augment: Any = None):
        super().__init__(name="distiller")
        self.student, self.teacher, self.augment = student, teacher, augment
        self.teacher.trainable = False
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.means = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    @property
    def metrics(self):
        """Reset by Keras at each epoch and each evaluation: the loss means, then the compiled metrics."""
        means = list(self.means.values())
        return means + [m for m in super().metrics if all(m is not mean for mean in means)]

    def _results(self, y: tf.Tensor, **losses: tf.Tensor):
        rows = tf.cast(tf.shape(y)[0], tf.float32)  # a short last batch weighs what its rows weigh
        for name, value in losses.items():
            self.means[name].update_state(value, sample_weight=rows)
        return {m.name: m.result() for m in self.metrics if m.name in losses or m.name not in self.means}

    def compile(self, optimizer: Any, student_loss: Any, metrics: Any) -> None:
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss = keras.losses.get(student_loss)

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _teacher_inputs(self, x: Mapping[str, tf.Tensor]) -> Any:
        return {name: x[name] for name in self.teacher.input_names}

    def train_step(self, data):
        x, y = data
        if self.augment is not None:  # both see the same augmented images (the student has no layers of its own)
            x = {k: self.augment(v, training=True) if len(v.shape) == 4 else v for k, v in x.items()}
        teacher = _class_probabilities(self.teacher(self._teacher_inputs(x), training=False))
        with tf.GradientTape() as tape:
            student_out = self.student(x, training=True)
            hard = tf.reduce_mean(self.student_loss(y, student_out))
            soft = keras.losses.kl_divergence(softened(teacher, self.temperature),
                                              softened(_class_probabilities(student_out), self.temperature))
            loss = self.alpha * hard + (1.0 - self.alpha) * self.temperature ** 2 * tf.reduce_mean(soft)
            loss += sum(self.student.losses) if self.student.losses else 0.0
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.compiled_metrics.update_state(y, student_out)
        return self._results(y, loss=loss, student_loss=hard, distillation_loss=tf.reduce_mean(soft))

    def test_step(self, data):
        x, y = data
        student_out = self.student(x, training=False)
        self.compiled_metrics.update_state(y, student_out)
        return self._results(y, loss=tf.reduce_mean(self.student_loss(y, student_out)))


def distiller(student: keras.Model, teacher: keras.Model, hp: Mapping[str, Any], task: str,
              augment: Any = None) -> Distiller:
    """A compiled Distiller for a binary or multiclass student; ``augment``: image augmentation
    applied once per batch, for teacher and student alike."""
    from components.models.base import LOSSES, task_metrics

    if task not in ("binary", "multiclass"):
        raise ValueError(f"distillation needs a binary or multiclass task, not {task}")
    missing = sorted(set(teacher.input_names) - set(student.input_names))
    if missing:
        raise ValueError(f"the teacher takes {', '.join(teacher.input_names)}; this run's Transform gives "
                         f"{', '.join(student.input_names)}")
    model = Distiller(student, teacher, hp["temperature"], hp["distill_alpha"], augment)
    model.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"]), student_loss=LOSSES[task],
                  metrics=task_metrics(task))
    return model


def teacher_model(model_dir: str) -> keras.Model:
    return keras.models.load_model(model_dir, compile=False)

