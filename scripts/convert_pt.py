#!/usr/bin/python3
"""Converts a PyTorch state_dict between torch.save's .pt format and safetensors, so a model
trained in PyTorch can be imported into advtrain (advtrain import) and an advtrain model used in
PyTorch (advtrain export). Needs Debian's python3-torch; run with /usr/bin/python3.

    convert_pt.py to-safetensors model.pt model.safetensors
    convert_pt.py to-pt model.safetensors model.pt
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import safetensors_io  # noqa: E402


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("to-safetensors", "to-pt"):
        sys.exit(__doc__)
    mode, src, dst = sys.argv[1:]
    if mode == "to-safetensors":
        state = torch.load(src, map_location="cpu")
        if not isinstance(state, dict):
            sys.exit(f"{src}: not a state_dict (a dict of tensors); save model.state_dict()")
        tensors = {k: v for k, v in state.items() if torch.is_tensor(v)}
        if len(tensors) != len(state):
            sys.exit(f"{src}: holds entries that are not tensors")
        safetensors_io.save(dst, tensors, {"format": "pt"})
    else:
        torch.save(safetensors_io.load(src), dst)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
