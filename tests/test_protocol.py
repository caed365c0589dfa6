"""The wire protocol's host side: float32 bits as hex, requests, reply parsing."""

from __future__ import annotations

import numpy as np
import pytest

from boardnet import forms
from boardnet.errors import BoardError
from boardnet.forms.f32 import f32_to_hex, hex_to_f32
from boardnet.link import protocol as P
from boardnet.model import Model
from boardnet.numerics import ulp_distance

F32 = forms.make(Model.from_arrays([[[1.0, 1.0]]], [[0.0]]), "f32")

HELLO = ("OK hello proto=1 runtime=micropython platform=rp2 model=people fp=baa20d355206ba05 "
         "precision=f32 n_in=2 n_out=1 window=10 line=256")


def test_hex_is_the_float32_bits_most_significant_first():
    assert f32_to_hex(-7.0) == "c0e00000"
    assert f32_to_hex(1.0) == "3f800000"
    assert hex_to_f32("c0e00000") == np.float32(-7.0)
    assert f32_to_hex(-0.0) == "80000000"


def test_hex_round_trips_every_kind_of_float32():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=2000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    back = np.array([hex_to_f32(f32_to_hex(v)) for v in values], dtype=np.float32)
    assert np.array_equal(back.view(np.uint32), values.view(np.uint32))


def test_encode_predict():
    x = np.array([-7.0, 1.0], dtype=np.float32)
    assert P.encode_predict(5, F32.encode(x)) == b"x 5 c0e00000 3f800000\n"
    with pytest.raises(ValueError):
        P.encode_predict(65536, F32.encode(x))
    assert P.encode_time(100) == b"time 100\n"
    with pytest.raises(ValueError):
        P.encode_time(0)


def test_parse_hello():
    info = P.parse_line(HELLO + "\r")
    assert isinstance(info, P.BoardInfo)
    assert (info.model, info.fingerprint, info.n_in, info.n_out, info.window, info.line) == (
        "people", "baa20d355206ba05", 2, 1, 10, 256)
    assert info.float32_exact
    wasm = P.parse_line(HELLO.replace("platform=rp2", "platform=webassembly"))
    assert not wasm.float32_exact


def test_unknown_protocol_version_is_refused_clearly():
    with pytest.raises(P.VersionMismatch, match="protocol 2; this boardnet knows protocol 1") as e:
        P.parse_line(HELLO.replace("proto=1", "proto=2"))
    assert isinstance(e.value, BoardError) and e.value.status == 3
    with pytest.raises(P.VersionMismatch):
        P.parse_line("READY " + HELLO[9:].replace("proto=1", "proto=7"))


def test_parse_replies():
    p = P.parse_line("OK 17 3f000000")
    assert p == P.Prediction(17, ("3f000000",))
    assert P.decode_outputs(F32, p.words, 1)[0] == np.float32(0.5)
    assert P.parse_line("ERR count expected 2 values, got 3") == P.Err("count", "expected 2 values, got 3")
    t = P.parse_line("OK time n=1000 total=52000 unit=us per=52.000")
    assert t == P.TimeInfo(1000, 52000.0, "us", 52.0)
    assert isinstance(P.parse_line("READY " + HELLO[9:]), P.Ready)
    assert isinstance(P.parse_line("x 17 3f000000"), P.Noise)  # an echo
    assert isinstance(P.parse_line("MicroPython v1.24.0 on 2024-10-25; Raspberry Pi Pico with RP2040"), P.Crash)
    assert isinstance(P.parse_line(">>> "), P.Crash)
    assert isinstance(P.parse_line("Traceback (most recent call last):"), P.Crash)


def test_decode_values_refuses_malformed_outputs():
    with pytest.raises(P.LinkError, match="2 outputs"):
        P.decode_outputs(F32, ("3f000000", "3f000000"), 1)
    with pytest.raises(P.LinkError, match="8 hex digits"):
        P.decode_outputs(F32, ("3f00000g",), 1)
    with pytest.raises(P.LinkError, match="8 hex digits"):
        P.decode_outputs(F32, ("3f0000",), 1)


def test_ulp_distance():
    a = np.array([1.0, 0.0, -0.0, 1.0], dtype=np.float32)
    b = np.array([np.nextafter(np.float32(1), np.float32(2)), -0.0, np.float32(-1e-45), 1.0], dtype=np.float32)
    assert ulp_distance(a, b).tolist() == [1, 0, 1, 0]
