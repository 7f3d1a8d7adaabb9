"""Text quality figures: n-gram perplexity and distinct-n.

Dimension legend: N lines, T tokens of one line, n n-gram order, V vocabulary size
(with <unk> and </s>, without <s>).

Tokens: lowercase words (letters/digits with inner apostrophes: "o'er", "'tis" -> "'", "tis")
and single punctuation marks (`tokenize`). Each line is one sequence: n-1 <s> pads in front,
</s> at the end; perplexity counts every token and </s>, never <s>.

`NgramModel` is an interpolated Kneser-Ney model (Chen & Goodman 1998, "An empirical study of
smoothing techniques", eqs. 24-26), with one absolute discount D_k = n1 / (n1 + 2 n2) per order
k (Ney et al. 1994; n1, n2: how many k-grams have count 1 and 2). Symbols, for context h of
length k-1 and its shortened context h' (first word dropped):

    p_k(w | h) = max(c_k(h w) - D_k, 0) / c_k(h .) + D_k N1+(h .) / c_k(h .) * p_{k-1}(w | h')
    p_0(w)     = 1 / V

where c_n are raw counts at the top order, c_k (k < n) continuation counts N1+(. h w) (how many
distinct words precede h w), c_k(h .) = sum_w c_k(h w) and N1+(h .) = how many distinct w follow
h. A context never seen at order k passes p_{k-1} through unchanged. Training words seen fewer
than `min_count` times become <unk>, so <unk> has real probability mass for unseen words.

distinct-n (Li et al. 2016, "A diversity-promoting objective function for neural conversation
models"): unique n-grams / total n-grams over all lines (n-grams never cross a line break).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\w\s]")
DEFAULT_DISCOUNT = 0.75  # used when an order has no count-1 or count-2 n-grams to estimate D
MAX_DISCOUNT = 0.95  # keeps D < 1 so every seen n-gram keeps positive mass
Ngram = tuple[str, ...]


def tokenize(line: str) -> list[str]:
    """'O Romeo, Romeo!' -> ['o', 'romeo', ',', 'romeo', '!']."""
    return _TOKEN.findall(line.lower())


def _check_lines(lines: Any, name: str) -> list[str]:
    """A non-empty list of strings, or ValueError naming `name`."""
    if isinstance(lines, str) or not isinstance(lines, Iterable):
        raise ValueError(f"{name} must be a list of strings, got {type(lines).__name__}")
    lines = list(lines)
    if not lines:
        raise ValueError(f"{name} is empty: need at least one line of text")
    bad = next((i for i, line in enumerate(lines) if not isinstance(line, str)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] is a {type(lines[bad]).__name__}, not a string")
    return lines


def _ngrams(tokens: Sequence[str], n: int) -> Iterable[Ngram]:
    """All contiguous n-grams of one token sequence (none if it is shorter than n)."""
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@dataclass
class _OrderCounts:
    """Counts of one order k: c_k(h w), c_k(h .), N1+(h .) and the discount D_k."""

    counts: Counter[Ngram] = field(default_factory=Counter)
    context_total: Counter[Ngram] = field(default_factory=Counter)
    context_types: Counter[Ngram] = field(default_factory=Counter)
    discount: float = DEFAULT_DISCOUNT

    def finish(self) -> None:
        """Fill the context sums and D_k = n1 / (n1 + 2 n2) from `counts`."""
        for gram, count in self.counts.items():
            self.context_total[gram[:-1]] += count
            self.context_types[gram[:-1]] += 1
        count_of_counts = Counter(self.counts.values())
        n1, n2 = count_of_counts[1], count_of_counts[2]
        if n1 > 0 and n2 > 0:
            self.discount = min(n1 / (n1 + 2 * n2), MAX_DISCOUNT)


class NgramModel:
    """Word-level interpolated Kneser-Ney n-gram model (module docstring).

    `NgramModel.fit(lines, n=3)` builds one; `perplexity(lines)` scores held-out lines;
    `probability(word, context)` gives p_n(w | h) for inspection.
    """

    def __init__(self, n: int, vocabulary: frozenset[str], orders: list[_OrderCounts]) -> None:
        self.n = n
        self.vocabulary = vocabulary  # V words the model predicts (incl. <unk> and </s>)
        self._orders = orders  # orders[k - 1] holds order k

    @classmethod
    def fit(cls, lines: Sequence[str], n: int = 3, min_count: int = 2) -> NgramModel:
        """Fit on real lines; words seen fewer than `min_count` times become <unk>."""
        lines = _check_lines(lines, "lines")
        if n < 1 or min_count < 1:
            raise ValueError(f"n and min_count must be >= 1, got n={n}, min_count={min_count}")
        tokenized = [tokenize(line) for line in lines]
        frequency = Counter(token for tokens in tokenized for token in tokens)
        if not frequency:
            raise ValueError("lines contain no words to fit an n-gram model on")
        kept = {word for word, count in frequency.items() if count >= min_count}
        vocabulary = frozenset(kept | {UNK, EOS})
        orders = [_OrderCounts() for _ in range(n)]
        for tokens in tokenized:  # top order: raw counts c_n
            orders[-1].counts.update(
                _ngrams(cls._pad([t if t in kept else UNK for t in tokens], n), n)
            )
        for k in range(n - 1, 0, -1):  # lower orders: continuation counts N1+(. h w)
            orders[k - 1].counts.update(gram[1:] for gram in orders[k].counts)
        for order in orders:
            order.finish()
        return cls(n, vocabulary, orders)

    @staticmethod
    def _pad(tokens: list[str], n: int) -> list[str]:
        return [BOS] * (n - 1) + tokens + [EOS]

    def _map_unknown(self, tokens: list[str]) -> list[str]:
        return [t if t in self.vocabulary else UNK for t in tokens]

    def probability(self, word: str, context: Sequence[str] = ()) -> float:
        """p_n(word | last n-1 words of context) by the interpolation of the module docstring."""
        word = word if word in self.vocabulary else UNK
        history = tuple(
            ([BOS] * (self.n - 1) + self._map_unknown(list(context)))[-(self.n - 1) :]
            if self.n > 1
            else ()
        )
        p = 1.0 / len(self.vocabulary)  # p_0
        for k, order in enumerate(self._orders, start=1):
            h = history[len(history) - (k - 1) :] if k > 1 else ()
            total = order.context_total.get(h, 0)
            if total == 0:
                continue  # unseen context: p_k = p_{k-1}
            c = order.counts.get(h + (word,), 0)
            backoff_weight = order.discount * order.context_types[h] / total
            p = max(c - order.discount, 0.0) / total + backoff_weight * p
        return p

    def log_likelihood(self, line: str) -> tuple[float, int]:
        """(sum of natural-log probabilities, number of predicted tokens incl. </s>) of a line."""
        padded = self._pad(self._map_unknown(tokenize(line)), self.n)
        start = self.n - 1
        total = sum(
            math.log(self.probability(padded[i], padded[i - start : i]))
            for i in range(start, len(padded))
        )
        return total, len(padded) - start

    def unknown_rate(self, lines: Sequence[str]) -> float:
        """Fraction of word tokens outside the vocabulary: perplexity scores them all as one
        <unk> word, so garbled text can look better than it is; read the two together."""
        tokens = [token for line in _check_lines(lines, "lines") for token in tokenize(line)]
        return sum(token not in self.vocabulary for token in tokens) / max(len(tokens), 1)

    def perplexity(self, lines: Sequence[str]) -> float:
        """exp(- mean log p) over every token and </s> of the lines."""
        lines = _check_lines(lines, "lines")
        log_likelihood, count = 0.0, 0
        for line in lines:
            line_ll, line_count = self.log_likelihood(line)
            log_likelihood, count = log_likelihood + line_ll, count + line_count
        return math.exp(-log_likelihood / count)


def distinct_n(lines: Sequence[str], n: int) -> float:
    """Unique n-grams / total n-grams over all lines (1.0: no n-gram repeats)."""
    lines = _check_lines(lines, "lines")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = [gram for line in lines for gram in _ngrams(tokenize(line), n)]
    if not grams:
        raise ValueError(f"no line has {n} or more tokens, so distinct-{n} is undefined")
    return len(set(grams)) / len(grams)


def _text_figures(lines: list[str], model: NgramModel, orders: Sequence[int]) -> dict[str, float]:
    """Perplexity, <unk> rate, distinct-n for each n, and mean tokens per line of one set."""
    figures = {"perplexity": model.perplexity(lines), "unknown_rate": model.unknown_rate(lines)}
    figures.update({f"distinct_{n}": distinct_n(lines, n) for n in orders})
    figures["mean_tokens"] = sum(len(tokenize(line)) for line in lines) / len(lines)
    return figures


def text_report(
    generated: Sequence[str],
    real_reference: Sequence[str],
    heldout_for_fitting: Sequence[str],
    *,
    n: int = 3,
    min_count: int = 2,
    distinct_orders: Sequence[int] = (1, 2, 3),
    match_sizes: bool = True,
) -> dict[str, Any]:
    """The issue's text figures for generated lines against real lines.

    An `NgramModel` of order n is fitted on `heldout_for_fitting` (real lines that neither the
    generator nor `real_reference` saw); the same perplexity and distinct-n figures are then
    computed for `generated` and for `real_reference`. distinct-n falls as the number of lines
    grows, so with `match_sizes` both sets are cut to the first min(N_gen, N_real) lines.

    Returns {"generated_perplexity", "real_perplexity", "perplexity_ratio" (generated / real),
    "generated_unknown_rate" / "real_unknown_rate" (tokens outside the model's vocabulary),
    "generated_distinct_k" / "real_distinct_k" per k, "generated_mean_tokens",
    "real_mean_tokens", "lines" (per set), "n", "vocabulary_size"}.
    """
    generated = _check_lines(generated, "generated")
    real_reference = _check_lines(real_reference, "real_reference")
    if match_sizes:
        size = min(len(generated), len(real_reference))
        generated, real_reference = generated[:size], real_reference[:size]
    model = NgramModel.fit(
        _check_lines(heldout_for_fitting, "heldout_for_fitting"), n=n, min_count=min_count
    )
    report: dict[str, Any] = {}
    for prefix, lines in (("generated", generated), ("real", real_reference)):
        report.update(
            {
                f"{prefix}_{key}": value
                for key, value in _text_figures(lines, model, distinct_orders).items()
            }
        )
    report["perplexity_ratio"] = report["generated_perplexity"] / report["real_perplexity"]
    report.update(lines=len(generated), n=n, vocabulary_size=len(model.vocabulary))
    return report
