"""FixMatch (Sohn et al. 2020): confident pseudo-labels from a weak view, learned on a strong view.

Notation: a step has B labeled images x_b with labels y_b and mu B unlabeled images u_i, each seen
as a weak view alpha(u_i) and a strong view A(u_i); p(.) is the network's softmax output. The
pseudo-label of u_i is q_i = p(alpha(u_i)) (a constant: no gradient flows through it), its class
argmax q_i, and it is kept when max q_i >= tau:

    loss = 1/B sum_b CE(y_b, p(x_b))
         + lambda * 1/(mu B) sum_i 1[max q_i >= tau] CE(argmax q_i, p(A(u_i)))

The unlabeled mean runs over all mu B images, kept or not, so the unlabeled term's weight grows with
the number of confident images.

FreeMatch (Wang et al. 2023) replaces the fixed tau by self-adaptive thresholds, one per class, from
two running means over the unlabeled batches (momentum m, both starting at 1/C for C classes):

    tau_t    = m tau_{t-1}    + (1 - m) 1/(mu B) sum_i max q_i        (the model's confidence)
    p~_t(c)  = m p~_{t-1}(c)  + (1 - m) 1/(mu B) sum_i q_i(c)          (its class shares)
    tau_t(c) = p~_t(c) / max_c' p~_t(c') * tau_t

and keeps u_i when max q_i >= tau_t(argmax q_i): low thresholds while the model is unsure, and lower
ones for the classes it predicts least.
"""

import tensorflow as tf


def weak_probabilities(weak_logits, class_ratio=None):
    """softmax(weak_logits) as a constant, aligned by class_ratio if given (align_distribution)."""
    probs = tf.stop_gradient(tf.nn.softmax(tf.cast(weak_logits, tf.float32)))
    return probs if class_ratio is None else align_distribution(probs, class_ratio)


def pseudo_labels(weak_logits, threshold, class_ratio=None):
    """(labels, mask, probs) of a batch of weak-view logits: probs = weak_probabilities; labels =
    argmax probs; mask = 1.0 where max probs >= the threshold, else 0.0. threshold: one number, or
    one per class (the predicted class's applies)."""
    probs = weak_probabilities(weak_logits, class_ratio)
    labels = tf.argmax(probs, axis=-1, output_type=tf.int32)
    threshold = tf.convert_to_tensor(threshold, tf.float32)
    if threshold.shape.rank == 1:
        threshold = tf.gather(threshold, labels)
    mask = tf.cast(tf.reduce_max(probs, axis=-1) >= threshold, tf.float32)
    return labels, mask, probs


def masked_cross_entropy(labels, logits, mask):
    """1/n sum_i mask_i CE(labels_i, logits_i) over all n examples (the masked ones count as 0)."""
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.cast(labels, tf.int32), tf.cast(logits, tf.float32)
    )
    return tf.reduce_mean(per_example * tf.cast(mask, tf.float32))


def fixmatch_loss(
    labels,
    labeled_logits,
    weak_logits,
    strong_logits,
    threshold,
    unlabeled_weight,
    class_ratio=None,
):
    """The FixMatch loss above: (loss, parts), parts = {supervised_loss, unlabeled_loss, mask,
    pseudo_labels, probs}. The ratio mu comes from the batch sizes (weak_logits has mu B rows)."""
    supervised = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(labels, tf.int32), tf.cast(labeled_logits, tf.float32)
        )
    )
    targets, mask, probs = pseudo_labels(weak_logits, threshold, class_ratio)
    unlabeled = masked_cross_entropy(targets, strong_logits, mask)
    parts = dict(
        supervised_loss=supervised,
        unlabeled_loss=unlabeled,
        mask=mask,
        pseudo_labels=targets,
        probs=probs,
    )
    return supervised + unlabeled_weight * unlabeled, parts


def align_distribution(probs, class_ratio):
    """Distribution alignment (ReMixMatch, Berthelot et al. 2020): q~ = normalize(q * r), with
    r = p(y) / p~(y), the labeled class frequencies over the running mean of the model's
    unlabeled predictions, so classes it predicts too often are scaled down."""
    aligned = probs * tf.cast(class_ratio, probs.dtype)
    return aligned / tf.reduce_sum(aligned, axis=-1, keepdims=True)


def running_mean(average, batch_probs, momentum):
    """p~ <- momentum * p~ + (1 - momentum) * (mean over the batch of q)."""
    return momentum * average + (1.0 - momentum) * tf.reduce_mean(batch_probs, axis=0)


def self_adaptive_thresholds(confidence, class_shares):
    """FreeMatch's per-class thresholds tau_t(c) = p~_t(c) / max_c' p~_t(c') * tau_t, from the
    running means tau_t (confidence, of max q) and p~_t (class_shares, of q): see running_mean."""
    return class_shares / tf.reduce_max(class_shares) * confidence
