"""Spread over seeds: mean, sample standard deviation and a Student-t confidence interval.

For n values x_1..x_n:
    mean = sum(x) / n
    std  = sqrt(sum((x - mean)^2) / (n - 1))            (the sample standard deviation)
    interval = mean -+ t_{(1+level)/2, n-1} * std / sqrt(n)
where t_{p, df} is the p-quantile of Student's t with df degrees of freedom. With one value there
is no spread: std and the interval are None.

The quantile inverts the t distribution's CDF by bisection. For t >= 0,
    CDF(t) = 1 - I_x(df/2, 1/2) / 2,   x = df / (df + t^2),
with I the regularized incomplete beta function, evaluated by its continued fraction (modified
Lentz). Pure Python: no scipy needed.
"""

import math


def mean(values):
    return sum(values) / len(values)


def sample_std(values):
    """The standard deviation with n - 1 in the denominator; None for fewer than 2 values."""
    if len(values) < 2:
        return None
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _beta_continued_fraction(a, b, x, iterations=300, tiny=1e-300, eps=1e-15):
    """The continued fraction of I_x(a, b) (converges fast for x < (a + 1) / (a + b + 2))."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, iterations + 1):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return fraction


def regularized_beta(a, b, x):
    """I_x(a, b) = B(x; a, b) / B(a, b) for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom."""
    x, y = df / (df + t * t), t * t / (df + t * t)  # y = 1 - x, exact for small t
    if x < (df / 2.0 + 1.0) / (df / 2.0 + 2.5):
        tail = 0.5 * regularized_beta(df / 2.0, 0.5, x)
    else:
        tail = 0.5 - 0.5 * regularized_beta(0.5, df / 2.0, y)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The t with P(T <= t) = p, for 0 < p < 1 (bisection on t_cdf, to about 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p={p} must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def summarize(values, level=0.95):
    """{n, mean, std, ci_low, ci_high} of a list of numbers (std and the interval None for n=1)."""
    values = [float(v) for v in values]
    n, m, s = len(values), mean(values), sample_std(values)
    if s is None:
        return {"n": n, "mean": m, "std": None, "ci_low": None, "ci_high": None}
    half = t_quantile((1.0 + level) / 2.0, n - 1) * s / math.sqrt(n)
    return {"n": n, "mean": m, "std": s, "ci_low": m - half, "ci_high": m + half}
