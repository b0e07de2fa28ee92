"""The photo patches use case (class folders of JPEG and PNG files of varied sizes): the CNN at the
use case's size and the ResNet and MobileNet families, each shipped to the edge within its gates."""
import pytest

from tests.helpers import int8_shrink, pixel_baseline_accuracy, run_use_case, served_accuracy

pytestmark = pytest.mark.pipeline


def _edge_gate(report, smaller: float = 3.5):
    """int8 within a point of the SavedModel (or one eval row, 1.5 points of these 66) and its weights
    ``smaller`` times smaller than float32's (both shipped)."""
    edge = report.edge["variants"]
    assert edge["float32"]["accepted"] and edge["int8"]["accepted"], edge
    assert edge["int8"]["metric_drop"] <= 1 / 60 and edge["int8"]["metric_drop_limit"] <= 1 / 60, edge["int8"]
    assert int8_shrink(edge) >= smaller, (edge["float32"], edge["int8"])


def test_photos_cnn_accuracy_and_edge(tmp_path_factory):
    """The photo patches as shipped (class folders, JPEG and PNG of varied sizes, the default size)."""
    config, report = run_use_case(tmp_path_factory, "photos")
    assert config.images.size == 48 and config.images.classes == {c: 60 for c in
                                                                  ("leaves", "pagoda", "petals", "sky", "trees")}
    assert report.blessed
    model_accuracy, baseline_accuracy = served_accuracy(report), pixel_baseline_accuracy(report, 48)
    assert model_accuracy >= baseline_accuracy, (model_accuracy, baseline_accuracy)  # the test's own yardstick
    _edge_gate(report)


# Both are held to at least logistic regression on the pixels (0.894). MobileNet runs 3 of its 7
# inverted-residual groups: at 32 px the later groups work on 2x2 and 1x1 maps, and 3 groups measured
# 0.985 against 7 groups' 0.864-0.970 (docs/suite-times.md). Its int8 is 1.7x smaller, not 3.5x: a
# depthwise 3x3 kernel has 9 weights per channel beside a per-channel scale, zero point and int32
# bias, all kept at full width, and the first groups are mostly such kernels (7 groups: 2.9x).
@pytest.mark.parametrize("family, more, smaller", [("resnet", (), 3.5), ("mobilenet", ("--hparam", "groups=3"), 1.7)],
                         ids=["resnet", "mobilenet"])
def test_photos_other_image_families_and_edge(tmp_path_factory, family, more, smaller):
    """Small (32 px) and short (15 epochs) to keep the suite's time; 5 classes, so chance is 0.2.
    bench/images_bench.py trains them at the use case's own size."""
    _, report = run_use_case(tmp_path_factory, "photos", "--family", family, "--image-size", "32",
                             "--hparam", "epochs=15", *more)
    model_accuracy, baseline_accuracy = served_accuracy(report), pixel_baseline_accuracy(report, 32)
    assert model_accuracy >= baseline_accuracy, (model_accuracy, baseline_accuracy)
    _edge_gate(report, smaller)
