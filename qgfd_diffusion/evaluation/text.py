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

Guardrails, because perplexity alone rewards the wrong things (frequent-word soup scores close
to real lines): unigram entropy H = -sum_w p(w) log2 p(w) of the tokens of a set of lines; the
copy rate (lines identical, token for token, to a training line); and reference rows scored by
the same referee (`reference_lines`): real lines with their words shuffled across lines, words
drawn at random by their training frequency, and a bigram chain fitted on the training lines.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from ..adapters.words import WORD_PATTERN

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# The word encoder's split (one definition of a word), plus <unk>: a decoder's unknown word
# stays one token (and is scored as unknown)
_TOKEN = re.compile(rf"{re.escape(UNK)}|{WORD_PATTERN}")
DEFAULT_DISCOUNT = 0.75  # used when an order has no count-1 or count-2 n-grams to estimate D
MAX_DISCOUNT = 0.95  # keeps D < 1 so every seen n-gram keeps positive mass
Ngram = tuple[str, ...]


def tokenize(line: str) -> list[str]:
    """'O Romeo, Romeo!' -> ['o', 'romeo', ',', 'romeo', '!']; a literal "<unk>" (a decoder's
    unknown word) is one token."""
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
        unknown = sum(token == UNK or token not in self.vocabulary for token in tokens)
        return unknown / max(len(tokens), 1)

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


def unigram_entropy(lines: Sequence[str]) -> float:
    """H = -sum_w p(w) log2 p(w) over the tokens of all lines, in bits."""
    counts = Counter(token for line in _check_lines(lines, "lines") for token in tokenize(line))
    total = sum(counts.values())
    if total == 0:
        raise ValueError("lines contain no tokens: unigram entropy is undefined")
    return -sum(c / total * math.log2(c / total) for c in counts.values())


def copy_rate(lines: Sequence[str], training_lines: Sequence[str]) -> float:
    """Share of lines identical, token for token, to some training line (memorised lines)."""
    return _share_seen(lines, _token_tuples(training_lines))


def _token_tuples(lines: Sequence[str]) -> set[tuple[str, ...]]:
    return {tuple(tokenize(line)) for line in _check_lines(lines, "training_lines")}


def _share_seen(lines: Sequence[str], seen: set[tuple[str, ...]]) -> float:
    lines = _check_lines(lines, "lines")
    return sum(tuple(tokenize(line)) in seen for line in lines) / len(lines)


class BigramChain:
    """A maximum-likelihood bigram model of token sequences, for sampling reference lines:
    p(w | v) = c(v w) / c(v .), with <s> before and </s> after each line."""

    def __init__(self, lines: Sequence[str]):
        self.successors: dict[str, Counter[str]] = defaultdict(Counter)
        for line in _check_lines(lines, "lines"):
            tokens = [BOS, *tokenize(line), EOS]
            for v, w in zip(tokens, tokens[1:], strict=False):
                self.successors[v][w] += 1

    def sample(self, count: int, seed: int, max_tokens: int = 40) -> list[str]:
        """``count`` lines drawn token by token from <s> until </s> (or ``max_tokens``)."""
        rng = random.Random(seed)
        lines = []
        for _ in range(count):
            tokens, word = [], BOS
            while len(tokens) < max_tokens:
                options = self.successors[word]
                word = rng.choices(list(options), weights=list(options.values()))[0]
                if word == EOS:
                    break
                tokens.append(word)
            lines.append(" ".join(tokens))
        return lines


def reference_lines(
    real: Sequence[str], training_lines: Sequence[str], seed: int
) -> dict[str, list[str]]:
    """Reference sets as many as ``real``: ``shuffled`` (real lines' words shuffled across the
    lines, lengths kept), ``frequent`` (each real line's length of words drawn by their training
    frequency) and ``bigram`` (lines sampled from a ``BigramChain`` of the training lines)."""
    real = _check_lines(real, "real")
    rng = random.Random(seed)
    lengths = [len(tokenize(line)) for line in real]
    pool = [token for line in real for token in tokenize(line)]
    rng.shuffle(pool)
    starts = [0, *accumulate(lengths)][:-1]
    shuffled = [" ".join(pool[a : a + n]) for a, n in zip(starts, lengths, strict=True)]
    frequency = Counter(
        t for line in _check_lines(training_lines, "training") for t in tokenize(line)
    )
    words, weights = list(frequency), list(frequency.values())
    frequent = [" ".join(rng.choices(words, weights=weights, k=n)) for n in lengths]
    bigram = BigramChain(training_lines).sample(len(real), seed)
    return {"shuffled": shuffled, "frequent": frequent, "bigram": bigram}


def _text_figures(
    lines: list[str],
    model: NgramModel,
    orders: Sequence[int],
    training_seen: set[tuple[str, ...]] | None,
) -> dict[str, float]:
    """Perplexity, <unk> rate, distinct-n for each n, mean tokens per line, unigram entropy and
    (with the training lines' token tuples) the copy rate of one set."""
    figures = {"perplexity": model.perplexity(lines), "unknown_rate": model.unknown_rate(lines)}
    figures.update({f"distinct_{n}": distinct_n(lines, n) for n in orders})
    figures["mean_tokens"] = sum(len(tokenize(line)) for line in lines) / len(lines)
    figures["unigram_entropy"] = unigram_entropy(lines)
    if training_seen is not None:
        figures["copy_rate"] = _share_seen(lines, training_seen)
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
    training_lines: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The text task's figures for generated lines against real lines.

    An `NgramModel` of order n is fitted on `heldout_for_fitting` (real lines that neither the
    generator nor `real_reference` saw); the same perplexity and distinct-n figures are then
    computed for `generated` and for `real_reference`. distinct-n falls as the number of lines
    grows, so with `match_sizes` both sets are cut to the first min(N_gen, N_real) lines.

    With ``training_lines`` (the generator's training data) each set also gets its copy rate,
    and the reference sets of ``reference_lines`` (drawn with ``seed``) are scored alike.

    Returns, for each set S of generated, real and (with training lines) reference_shuffled,
    reference_frequent, reference_bigram: "S_perplexity", "S_unknown_rate" (tokens outside the
    model's vocabulary), "S_distinct_k" per k, "S_mean_tokens", "S_unigram_entropy",
    "S_copy_rate"; the ratios to real "perplexity_ratio" (generated / real),
    "S_perplexity_ratio" for the references, "entropy_ratio", "distinct_k_ratio",
    "mean_tokens_ratio";
    and "lines" (per set), "n", "vocabulary_size".
    """
    generated = _check_lines(generated, "generated")
    real_reference = _check_lines(real_reference, "real_reference")
    if match_sizes:
        size = min(len(generated), len(real_reference))
        generated, real_reference = generated[:size], real_reference[:size]
    model = NgramModel.fit(
        _check_lines(heldout_for_fitting, "heldout_for_fitting"), n=n, min_count=min_count
    )
    sets = {"generated": generated, "real": real_reference}
    if training_lines is not None:
        references = reference_lines(real_reference, training_lines, seed)
        sets.update({f"reference_{name}": lines for name, lines in references.items()})
    seen = None if training_lines is None else _token_tuples(training_lines)  # once for all sets
    report: dict[str, Any] = {}
    for prefix, lines in sets.items():
        figures = _text_figures(lines, model, distinct_orders, seen)
        report.update({f"{prefix}_{key}": value for key, value in figures.items()})
    real_perplexity = report["real_perplexity"]
    report["perplexity_ratio"] = report["generated_perplexity"] / real_perplexity
    for prefix in sets:
        if prefix.startswith("reference_"):
            report[f"{prefix}_perplexity_ratio"] = report[f"{prefix}_perplexity"] / real_perplexity
    report["entropy_ratio"] = report["generated_unigram_entropy"] / report["real_unigram_entropy"]
    report["mean_tokens_ratio"] = report["generated_mean_tokens"] / report["real_mean_tokens"]
    for k in distinct_orders:
        report[f"distinct_{k}_ratio"] = (
            report[f"generated_distinct_{k}"] / report[f"real_distinct_{k}"]
        )
    report.update(lines=len(generated), n=n, vocabulary_size=len(model.vocabulary))
    return report
