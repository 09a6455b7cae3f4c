from __future__ import annotations

import pytest

from edgekit.errors import UsageError
from edgekit.spec import TensorSpec, parse_input_spec, parse_input_specs


def test_parse_static_and_dynamic_dims():
    spec = parse_input_spec("input_ids:int64:batchx128")
    assert spec == TensorSpec("input_ids", "int64", ("batch", 128))
    assert spec.dynamic_axes == {0: "batch"}
    assert spec.concrete_shape({"batch": 4}) == (4, 128)
    assert parse_input_spec("image:float32:1x3x224x224").shape == (1, 3, 224, 224)


@pytest.mark.parametrize("bad", ["image", "image:float32", "image:float99:1x3", "image:float32:1x0x3", "a:b:c:d"])
def test_bad_specs_say_how_to_write_one(bad):
    with pytest.raises(UsageError) as e:
        parse_input_spec(bad)
    assert "NAME:DTYPE:SHAPE" in str(e.value) or "dtype" in str(e.value) or "≥ 1" in str(e.value)


def test_duplicate_names_are_refused():
    with pytest.raises(UsageError):
        parse_input_specs(["x:float32:1", "x:float32:2"])


def test_json_round_trip():
    spec = TensorSpec("x", "int8", ("batch", 10), scale=0.5, zero_point=-3)
    assert TensorSpec.from_json(spec.to_json()) == spec
