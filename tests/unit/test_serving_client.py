"""The serving client (`mlops predict`)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_predictions_go_to_the_stream_that_is_stdout_when_they_are_printed():
    """A default bound at import kept the stream of that moment (a test's capture, a closed pipe)."""
    import contextlib
    import io

    from serving.client import print_predictions

    for response, lines in (({"predictions": [[0.25], [0.75]]}, ["0\t[0.25]", "1\t[0.75]"]),
                            ({"outputs": {"a": 1}}, ['{"a": 1}'])):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            print_predictions(response)
        assert out.getvalue().splitlines() == lines
