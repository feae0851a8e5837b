#!/usr/bin/env bash
# Writes the seed corpus of every fuzz harness into tests/fuzz/corpus/<name>/: a few small valid
# files of each format (python3 with numpy and onnx, and fuzz_checkpoint_seeds from BUILD for the
# checkpoints). Inputs that once crashed a parser live beside them as crash-* files; this script
# leaves those alone. Usage: tests/fuzz/make_corpus.sh BUILD
set -euo pipefail
build=${1:?usage: make_corpus.sh BUILD (a build directory with fuzz_checkpoint_seeds)}
corpus="$(cd "$(dirname "$0")" && pwd)/corpus"
for name in idx cifar safetensors checkpoint config eval_state certify_state flow_state npz onnx; do
    mkdir -p "$corpus/$name"
done

"$build/tests/fuzz/fuzz_checkpoint_seeds" "$corpus/checkpoint"

python3 - "$corpus" <<'PY'
import gzip, hashlib, io, json, struct, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

corpus = sys.argv[1]

def write(name, data):
    with open(f"{corpus}/{name}", "wb") as f:
        f.write(data)

# IDX: harness input = classes-1 byte, image-file length (u16 LE), image file, label file
def idx(magic_type, dims, payload):
    return bytes([0, 0, magic_type, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload
images = idx(8, [3, 2, 2], bytes(range(12)))
labels = idx(8, [3], bytes([0, 1, 2]))
def idx_input(img, lab):
    return bytes([9]) + struct.pack("<H", len(img)) + img + lab
write("idx/raw", idx_input(images, labels))
write("idx/gzip", idx_input(gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0)))

# CIFAR: mode byte (bit 0: CIFAR-100 label bytes, bit 1: two files), then records
record10 = bytes([3]) + bytes(i % 256 for i in range(3072))
record100 = bytes([1, 42]) + bytes(255 - i % 256 for i in range(3072))
write("cifar/cifar10", bytes([0]) + record10 * 2)
write("cifar/cifar100", bytes([1 | 2]) + record100)

# safetensors: u64 LE header length, JSON header, data
def safetensors(tensors, meta=None):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if meta:
        header["__metadata__"] = meta
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)
write("safetensors/mixed", safetensors({
    "w": ("F32", [2, 3], np.arange(6, dtype="<f4").tobytes()),
    "n": ("I64", [], struct.pack("<q", 7)),
    "h": ("F16", [2], np.array([1, -2], dtype="<f2").tobytes()),
    "b": ("U8", [0], b""),
}, {"format": "pt", "model": "{}"}))
write("safetensors/empty", safetensors({}))

# --config: name = value lines (options of fuzz_config.c)
write("config/train.cfg", b"# a run\nepochs = 3\nepsilon = 0.1\nout = runs/a\n"
      b"method = trades\nquiet = false\neps-list = 0.1,0.2, 0.3\n")
write("config/short.cfg", b"  epochs=7  # seven\n\n")

# eval state: 8 points, attacks fgsm and pgd, 4 calibration bins, fingerprint "fuzz"
def stats(steps):
    return {"points": 5, "fooled": 2, "max_linf": 0.1, "max_l2": 1.5, "max_l1": 3.0,
            "out_of_range": 0, "eval_max_linf": 0.1, "eval_max_l2": 1.5, "eval_max_l1": 3.0,
            "eval_out_of_range": 0, "nonfinite_outputs": 0, "gradient_evals": 10,
            "forward_evals": 12, "zero_gradients": 0, "nonfinite_gradients": 0, "bn_mode": 2,
            "steps": steps, "loss_sum": [0.5] * (steps + 1), "loss_count": [5] * (steps + 1),
            "joint": {"latent": 0.0, "pixel": 0.0, "reconstruction": 0.0}}
def calibration():
    return {"n": 6, "correct": 4, "nonfinite": 0, "confidence_sum": 4.5, "nll_sum": 2.0,
            "brier_sum": 1.0, "count": [1, 2, 3, 0], "bin_correct": [0, 1, 3, 0],
            "confidence": [0.1, 0.9, 2.5, 0.0]}
state = {"fingerprint": "fuzz", "done": 6, "total": 8, "outcome": "mr01rm",
         "clean_correct": 4, "clean_seconds": 0.25, "broken_by": [1, 1], "seconds": [0.5, 1.0],
         "stats": [stats(1), dict(stats(3), iwd={"points": 1, "sum": 0.5, "max": 0.5,
                                                  "over_budget": 0})],
         "calibration": {"bins": 4, "clean": calibration(), "adversarial": calibration()}}
write("eval_state/state.json", json.dumps(state, sort_keys=True).encode())
old = dict(state, done=2, outcome="rm")
del old["calibration"]
write("eval_state/old.json", json.dumps(old).encode())

# certify_state: a certification of 8 points, fingerprint "fuzz" (as fuzz_certify_state.c loads
# it): 3 points done (one abstention), then all 8
point = [3, 3, 97, 9950, 0, 0.9981, 0.0, 0.7217]
abstain = [-1, 5, 51, 5100, 0, 0.4977, 0.0, 0.0]
cert = {"fingerprint": "fuzz", "points": 8, "seconds": 12.5, "plain_seconds": 0.25,
        "plain_images": 3000, "results": [point, abstain, point]}
write("certify_state/three.json", json.dumps(cert).encode())
write("certify_state/done.json", json.dumps(dict(cert, results=[point, abstain] * 4)).encode())

# flow_state: Adam's state for fuzz_flow_state.c's flow (61 coupling parameters, 16 of the 1x1
# convolution) after 3 epochs of 4 steps, settings {"--seed": 0}, the flow file "flow"; and
# another run's (seed 1)
moments = {f"model{m}.{state}": ("F32", [count], struct.pack(f"<{count}f", *(i * 1e-5 for i in range(count))))
           for m, count in ((0, 61), (1, 16)) for state in ("exp_avg", "exp_avg_sq")}
meta = {"format": "advtrain-flow-optimizer-1", "epochs": "3", "adam_steps": "12",
        "settings": '{"--seed":0}', "flow_sha256": hashlib.sha256(b"flow").hexdigest()}
write("flow_state/three.safetensors", safetensors(moments, meta))
write("flow_state/other-seed.safetensors",
      safetensors(moments, dict(meta, epochs="40", settings='{"--seed":1}')))

# npz: mode byte (bit 0: 3 channels, bits 1-3: side - 1), then the archive of uint8 images
# [n, h, w] (one channel) or [n, h, w, c] and integer labels, stored and deflated
def npz(mode, compress, **arrays):
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    return bytes([mode]) + buf.getvalue()
write("npz/stored.npz", npz(3 << 1, False,
                            image=np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4),
                            label=np.array([0, 1], dtype=np.int64)))
write("npz/deflated.npz", npz(1 | 1 << 1, True, images=np.zeros((1, 2, 2, 3), dtype=np.uint8),
                              labels=np.array([5], dtype=np.uint8)))

# ONNX: conv, batch norm, relu, max pool, a residual add, flatten and gemm on 1x4x4
def init(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)
rng = np.random.default_rng(0)
nodes = [
    helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean",
                                            "bn.running_var"], ["b"], epsilon=1e-5),
    helper.make_node("Relu", ["b"], ["r"]),
    helper.make_node("Add", ["r", "c"], ["s"]),
    helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Flatten", ["p"], ["f"]),
    helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], transB=1),
]
inits = [init("conv.weight", rng.normal(size=(2, 1, 3, 3))), init("conv.bias", [0.1, -0.1]),
         init("bn.weight", [1, 1]), init("bn.bias", [0, 0]), init("bn.running_mean", [0, 0]),
         init("bn.running_var", [1, 1]), init("fc.weight", rng.normal(size=(3, 8))),
         init("fc.bias", [0, 0, 0])]
graph = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         ["N", 1, 4, 4])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
                          inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
write("onnx/small.onnx", model.SerializeToString())
PY
du -sh "$corpus"
