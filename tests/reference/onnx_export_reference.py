#!/usr/bin/python3
"""The ONNX export reference tier: models exported by advtrain (onnx_export_dump writes each
file with advtrain's logits on random inputs) checked by independent code.

For each file: onnx.checker.check_model with full_check (the ONNX library's own validation and
shape inference), then OpenCV's dnn module (cv2.dnn.readNetFromONNX, a separate ONNX runtime)
runs it on the same inputs, and its logits must be within 1e-4 relative error of advtrain's
(max |a - b| over max |b|).

    onnx_export_reference.py --dump ONNX_EXPORT_DUMP [--keep DIR]

Exit status 77 (a visible skip) when python3-onnx, python3-opencv or NumPy is missing.
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import cv2
    import numpy as np
    import onnx
except ImportError as e:  # the optional tier: a visible skip, never a pass
    print(f"SKIPPED: the ONNX export tier needs python3-onnx, python3-opencv and NumPy ({e})")
    sys.exit(77)

TOLERANCE = 1e-4


def check(directory, name, n, c, h, w, k):
    path = os.path.join(directory, name + ".onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    out = inferred.graph.output[0].type.tensor_type.shape.dim
    assert out[0].dim_param == "N" and out[1].dim_value == k, f"{name}: output shape {out}"
    x = np.fromfile(os.path.join(directory, name + ".x.f32"), dtype=np.float32)
    x = x.reshape(n, c, h, w)
    want = np.fromfile(os.path.join(directory, name + ".logits.f32"), dtype=np.float32)
    want = want.reshape(n, k)
    net = cv2.dnn.readNetFromONNX(path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.setInput(x)
    got = net.forward().reshape(n, k)
    error = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
    ok = error <= TOLERANCE
    print(f"{'ok  ' if ok else 'FAIL'} {name}: onnx.checker passed; OpenCV logits within "
          f"{error:.2e} relative of advtrain's ({n} inputs, {k} classes)")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dump", required=True)
    parser.add_argument("--keep", help="write the files here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or tmp
        os.makedirs(directory, exist_ok=True)
        subprocess.run([args.dump, directory], check=True)
        failures = 0
        with open(os.path.join(directory, "cases.txt")) as cases:
            for line in cases:
                name, *dims = line.split()
                try:
                    failures += not check(directory, name, *map(int, dims))
                except Exception as e:  # a checker or runtime refusal is a failure, with reason
                    print(f"FAIL {name}: {type(e).__name__}: {e}")
                    failures += 1
    print(f"{failures} failure(s)" if failures else "onnx export reference: all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
