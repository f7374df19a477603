# SPDX-License-Identifier: MIT
# A memory hog for scenario 9: takes 8 MiB at a time (zero-filled, so really used), up to 2 GiB.
chunks = []
for i in range(256):
    chunks.append(bytearray(8 << 20))
    print("HOG-MIB=%d" % (8 * (i + 1)), flush=True)
