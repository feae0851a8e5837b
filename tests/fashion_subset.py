"""fashion_subset.py DATA OUT N_TRAIN N_TEST: the first N_TRAIN training and N_TEST test images of
the Fashion-MNIST directory DATA, written to OUT as gzip'd IDX files like the package's, for the
command-line tests that need a small data set (a short evaluation on the test split)."""
import gzip
import os
import struct
import sys

data, out, n_train, n_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(out, exist_ok=True)
for split, n in (("train", n_train), ("t10k", n_test)):
    images = gzip.open(os.path.join(data, f"{split}-images-idx3-ubyte.gz")).read()
    labels = gzip.open(os.path.join(data, f"{split}-labels-idx1-ubyte.gz")).read()
    with gzip.open(os.path.join(out, f"{split}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images[16:16 + n * 784])
    with gzip.open(os.path.join(out, f"{split}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels[8:8 + n])
