"""Release: mobile app asset bundles (models, labels, tokenizer, manifest.json with checksums) and their check:
edgekit.release.bundle.bundle() and edgekit.release.verify.verify()."""
