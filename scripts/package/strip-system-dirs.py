"""Rewrites a .deb's data archive without the directory entries of /usr/local that base-files
creates (see cmake/BaetylDebSystemDirs.cmake). Every other member is copied as it is.

    /usr/bin/python3 strip-system-dirs.py DATA_TAR_GZ_IN DATA_TAR_GZ_OUT
"""
import sys
import tarfile

SYSTEM_DIRS = {
    "usr/local", "usr/local/bin", "usr/local/etc", "usr/local/games", "usr/local/include",
    "usr/local/lib", "usr/local/sbin", "usr/local/share", "usr/local/share/man", "usr/local/src",
}


def normalized(name):
    name = name[2:] if name.startswith("./") else name
    return name.rstrip("/")


def main(source, target):
    with tarfile.open(source, "r:gz") as src, \
            tarfile.open(target, "w:gz", format=tarfile.GNU_FORMAT, compresslevel=9) as dst:
        for member in src:
            if member.isdir() and normalized(member.name) in SYSTEM_DIRS:
                continue
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
