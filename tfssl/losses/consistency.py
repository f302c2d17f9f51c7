"""Mean Teacher (Tarvainen & Valpola 2017): consistency costs, the sigmoid ramp-up and the EMA rule.

Notation: s_i and t_i are the student's and the teacher's logits for example i of a batch of n,
C the number of classes, p = softmax(.). Teacher outputs are targets: no gradient flows into them.
"""

import tensorflow as tf


def softmax_mse(student_logits, teacher_logits):
    """Squared distance between class probabilities (the paper's default consistency cost):

        cost = 1/n sum_i 1/C sum_c (p(s_i)_c - p(t_i)_c)^2

    (the reference's softmax_mse_loss summed over the batch, divided by the batch size).
    """
    student_probs = tf.nn.softmax(tf.cast(student_logits, tf.float32))
    teacher_probs = tf.stop_gradient(tf.nn.softmax(tf.cast(teacher_logits, tf.float32)))
    return tf.reduce_mean(tf.square(student_probs - teacher_probs))


def softmax_kl(student_logits, teacher_logits):
    """KL divergence from the teacher's class distribution to the student's:

    cost = 1/n sum_i sum_c p(t_i)_c (log p(t_i)_c - log p(s_i)_c)
    """
    teacher_log_probs = tf.stop_gradient(tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32)))
    student_log_probs = tf.nn.log_softmax(tf.cast(student_logits, tf.float32))
    per_example = tf.reduce_sum(
        tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), -1
    )
    return tf.reduce_mean(per_example)


CONSISTENCY_COSTS = {"mse": softmax_mse, "kl": softmax_kl}


def logit_distance(logits_1, logits_2):
    """Cost tying a student's two heads together (gradients reach both):

        cost = 1/n sum_i 1/C sum_c (a_ic - b_ic)^2

    With two heads, the first is trained on labels and the second on consistency with the teacher;
    this cost keeps them close while letting them differ.
    """
    difference = tf.cast(logits_1, tf.float32) - tf.cast(logits_2, tf.float32)
    return tf.reduce_mean(tf.square(difference))


def sigmoid_rampup(step, rampup_steps):
    """exp(-5 (1 - t)^2) with t = clip(step / rampup_steps, 0, 1): 0.0067 at step 0, 1 from
    rampup_steps on (Laine & Aila 2017). 1 when rampup_steps is 0."""
    if rampup_steps <= 0:
        return tf.constant(1.0)
    progress = tf.clip_by_value(tf.cast(step, tf.float32) / float(rampup_steps), 0.0, 1.0)
    return tf.exp(-5.0 * tf.square(1.0 - progress))


def ema_decay(step, rampup_steps, decay_during_rampup=0.99, decay_after_rampup=0.999):
    """Teacher EMA decay for the update after training step `step` (0 for the first step):

        alpha = min(1 - 1 / (step + 2),
                    decay_during_rampup if step < rampup_steps else decay_after_rampup)

    The second term is the paper's schedule. The first, from the reference PyTorch code, makes the
    teacher the plain average of all student weights so far while fewer than 1 / (1 - alpha) steps
    have been taken (the teacher starts as a copy of the student).
    """
    step = tf.cast(step, tf.float32)
    scheduled = tf.where(step < float(rampup_steps), decay_during_rampup, decay_after_rampup)
    return tf.minimum(1.0 - 1.0 / (step + 2.0), scheduled)


def ema_update(teacher_value, student_value, decay):
    """teacher <- decay * teacher + (1 - decay) * student."""
    return decay * teacher_value + (1.0 - decay) * student_value
