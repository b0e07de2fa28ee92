"""A synthetic tabular data set of any size, for scale runs and the scale benchmark: numeric
features of different shapes, two string columns, missing values, and a binary label that depends
on a few of them. Written in chunks, so 1M rows take a few seconds and bounded memory."""
import csv
from pathlib import Path
from typing import List, Optional

import numpy as np

SEGMENTS = np.array(["retail", "online", "wholesale", "partner"])
CHANNELS = np.array(["web", "app", "store"])
LABEL = "is_fraud"
CHUNK = 50_000


def columns(numeric: int) -> list:
    return [f"x{i:02d}" for i in range(numeric)] + ["amount", "segment", "channel", LABEL]


def write_transactions(path: Path, rows: int, seed: int = 0, numeric: int = 12, missing_share: float = 0.02,
                       concept_seed: Optional[int] = None) -> Path:
    """``rows`` rows of ``numeric`` standard-normal features, a log-normal amount, two strings and
    the label (a minority class, about 20% positive). About ``missing_share`` of two columns is left empty.
    ``concept_seed`` (default: ``seed``) fixes how the label depends on the features."""
    if rows < 1:
        raise ValueError(f"rows={rows}: need at least one row")
    concept = np.random.default_rng(seed if concept_seed is None else concept_seed)
    weights = concept.normal(0, 1, numeric) * (concept.random(numeric) < 0.5)
    rng = np.random.default_rng([seed, 1]) if concept_seed is not None else concept
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns(numeric))
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            x = rng.normal(0, 1, (n, numeric))
            amount = rng.lognormal(4, 1, n)
            segment, channel = rng.integers(0, len(SEGMENTS), n), rng.integers(0, len(CHANNELS), n)
            logit = x @ weights + 0.8 * (segment == 1) + 0.3 * np.log(amount) - 3.2 + rng.normal(0, 0.5, n)
            label = (logit > 0).astype(int)
            text = np.char.mod("%.4f", x).astype(object)
            text[rng.random((n, numeric)) < missing_share * (np.arange(numeric) < 2)] = ""  # gaps in x00, x01
            segments = SEGMENTS[segment].astype(object)
            segments[rng.random(n) < missing_share] = ""
            block = np.column_stack([text, np.char.mod("%.2f", amount), segments, CHANNELS[channel], label])
            writer.writerows(block.tolist())
    return path


def write_spans(folder: Path, spans: int, rows: int, seed: int = 0) -> List[Path]:
    """``folder/span-1/data.csv`` .. ``span-{spans}``: new rows per span, one label concept."""
    if spans < 1:
        raise ValueError(f"spans={spans}: need at least one span")
    return [write_transactions(folder / f"span-{span}" / "data.csv", rows, seed=seed + span, concept_seed=seed)
            for span in range(1, spans + 1)]


# Reviews whose label lives in their words only: each review mixes words of a shared pool with a
# few of its class's own pool, and its number and category columns are noise, so a model that
# ignores the text scores ~0.5 AUC and one that reads it scores high.
SHARED_WORDS = ("the", "a", "this", "it", "was", "and", "very", "really", "delivery", "box", "price", "item",
                "order", "we", "my", "arrived", "product", "service", "time", "again")
CLASS_WORDS = {"yes": ("great", "love", "perfect", "excellent", "happy", "works", "recommend", "best", "nice",
                       "quality"),
               "no": ("broken", "refund", "poor", "late", "worst", "disappointed", "returned", "cheap", "missing",
                      "useless")}


def write_reviews(path: Path, rows: int, seed: int = 0) -> Path:
    """``rows`` reviews: ``review`` (6-20 words), ``stars_shown`` and ``store`` (noise), label ``recommended``
    (yes/no). One word in six comes from the class's pool, one review in ten has only shared words."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "stars_shown", "store", "recommended"])
        for _ in range(rows):
            label = "yes" if rng.random() < 0.5 else "no"
            size = int(rng.integers(6, 21))
            own = rng.random(size) < (1 / 6 if rng.random() > 0.1 else 0)
            words = [rng.choice(CLASS_WORDS[label]) if mine else rng.choice(SHARED_WORDS) for mine in own]
            writer.writerow([" ".join(words).capitalize() + ".", int(rng.integers(1, 6)), str(rng.choice(CHANNELS)),
                             label])
    return path


PROMO_WEEKDAYS = (0.8, 0.9, 0.95, 1.0, 1.2, 1.5, 0.7)  # Monday first


def write_promo_sales(path: Path, days: int, seed: int = 7, shops=(("north", 200.0), ("south", 50.0))) -> Path:
    """Daily sales of shops (day, shop, sales, Promo) from 2023-01-01: a weekday pattern, a yearly
    cycle and promotions planned ahead on ~15% of days (+60%), 4% noise. Promo is known ahead and
    carries signal that the past values alone cannot give."""
    import math
    import random
    from datetime import date, timedelta

    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["day", "shop", "sales", "Promo"])
        for shop, level in shops:
            for d in range(days):
                day = date(2023, 1, 1) + timedelta(days=d)
                promo = int(rng.random() < 0.15)
                year = 1 + 0.25 * math.sin(2 * math.pi * day.timetuple().tm_yday / 365.25)
                value = level * PROMO_WEEKDAYS[day.weekday()] * year * (1 + 0.6 * promo) * (1 + rng.gauss(0, 0.04))
                writer.writerow([day.isoformat(), shop, round(value, 2), promo])
    return path
