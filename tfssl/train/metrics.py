"""Classification metrics as pure numpy functions (tested against scikit-learn).

labels: int (N,); predictions: int (N,); scores: float (N,) for binary tasks (the positive
class's probability), or (N, C) class probabilities.
"""

import numpy as np


def confusion_matrix(labels, predictions, num_classes):
    """M[i, j] = number of examples of class i predicted as j."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return matrix


def per_class(matrix):
    """{precision, recall, f1, support} per class; 0 where undefined (scikit-learn's
    zero_division=0)."""
    matrix = np.asarray(matrix, np.float64)
    true_positives = np.diag(matrix)
    predicted, support = matrix.sum(0), matrix.sum(1)
    precision = np.divide(
        true_positives, predicted, out=np.zeros_like(predicted), where=predicted > 0
    )
    recall = np.divide(true_positives, support, out=np.zeros_like(support), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def balanced_accuracy(matrix):
    """Mean recall over the classes present in the labels."""
    matrix = np.asarray(matrix, np.float64)
    support = matrix.sum(1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present])) if present.any() else np.nan


def average_ranks(values):
    """1-based ranks; tied values share the mean of their ranks."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def binary_auroc(is_positive, scores):
    """Area under the ROC curve: P(score of a positive > score of a negative) + P(tie) / 2
    (the Mann-Whitney U statistic; equal to scikit-learn's trapezoidal area, ties included).
    NaN when one class is missing."""
    is_positive = np.asarray(is_positive, bool)
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if not positives or not negatives:
        return np.nan
    rank_sum = average_ranks(scores)[is_positive].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def auroc(labels, probabilities):
    """Binary AUROC of class 1's probability for 2 classes; else the macro mean of one-vs-rest
    AUROCs over the classes present in the labels (scikit-learn's multi_class='ovr')."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    if probabilities.shape[1] == 2:
        return binary_auroc(labels == 1, probabilities[:, 1])
    per = [
        binary_auroc(labels == c, probabilities[:, c])
        for c in range(probabilities.shape[1])
        if (labels == c).any()
    ]
    per = [v for v in per if not np.isnan(v)]
    return float(np.mean(per)) if per else np.nan


def roc_curve(is_positive, scores):
    """(false positive rates, true positive rates, thresholds), thresholds decreasing over the
    distinct scores: 'positive' means score >= threshold."""
    is_positive = np.asarray(is_positive, bool)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    scores, is_positive = np.asarray(scores, np.float64)[order], is_positive[order]
    last_of_value = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), len(scores) - 1]
    true_positives = np.cumsum(is_positive)[last_of_value]
    false_positives = (last_of_value + 1) - true_positives
    return (
        false_positives / max(int((~is_positive).sum()), 1),
        true_positives / max(int(is_positive.sum()), 1),
        scores[last_of_value],
    )


def youden_threshold(is_positive, scores):
    """(threshold, J): the score threshold maximising Youden's J = sensitivity + specificity - 1
    (the largest such threshold when several tie)."""
    fpr, tpr, thresholds = roc_curve(is_positive, scores)
    j = tpr - fpr
    best = int(np.argmax(j))
    return float(thresholds[best]), float(j[best])


def binary_metrics(is_positive, predicted_positive):
    """Sensitivity (recall of the positives), specificity (of the negatives), accuracy, balanced
    accuracy, precision (positive predictive value) and the 2x2 confusion matrix [[TN, FP],
    [FN, TP]]."""
    is_positive = np.asarray(is_positive, bool)
    predicted_positive = np.asarray(predicted_positive, bool)
    matrix = confusion_matrix(is_positive, predicted_positive, 2)
    (tn, fp), (fn, tp) = matrix
    sensitivity = tp / (tp + fn) if tp + fn else np.nan
    specificity = tn / (tn + fp) if tn + fp else np.nan
    return {
        "sensitivity": float(sensitivity),
        "specificity": float(specificity),
        "accuracy": float((tp + tn) / max(matrix.sum(), 1)),
        "balanced_accuracy": float(np.nanmean([sensitivity, specificity])),
        "precision": float(tp / (tp + fp)) if tp + fp else 0.0,
        "confusion_matrix": matrix.tolist(),
    }


def classification_report(labels, probabilities, positive=1):
    """Every metric of an eval, as JSON-ready values: balanced accuracy, AUROC, per-class
    precision/recall/F1, the confusion matrix, and for 2 classes sensitivity and specificity of
    class `positive` (argmax decisions, i.e. probability >= 0.5 up to exact ties)."""
    labels = np.asarray(labels, np.int64)
    probabilities = np.asarray(probabilities, np.float64)
    num_classes = probabilities.shape[1]
    predictions = np.argmax(probabilities, -1)
    matrix = confusion_matrix(labels, predictions, num_classes)
    report = {
        "balanced_accuracy": balanced_accuracy(matrix),
        "auroc": auroc(labels, probabilities),
    }
    if num_classes == 2:
        binary = binary_metrics(labels == positive, predictions == positive)
        report.update(sensitivity=binary["sensitivity"], specificity=binary["specificity"])
    report["per_class"] = {k: v.tolist() for k, v in per_class(matrix).items()}
    report["confusion_matrix"] = matrix.tolist()
    return report
