"""`appliance release`: build a signed, reproducible release, make keys, sign, verify (and unpack).

verify's exit status: 0 trusted, 1 refused (the message starts with the code: untrusted_release,
hash_mismatch, downgrade), 2 bad usage (no such file, a trusted key that does not resolve). With
`--json` it prints one object either way, for install-release.sh to read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from appliance.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, OperationalError, UsageError
from appliance.config import load_config
from appliance.release.artifact import sign_artifact
from appliance.release.build import BuildOptions, build_release
from appliance.release.errors import ReleaseRefused, ReleaseUsageError
from appliance.release.keys import generate_key_pair, load_private_key, trusted_keys
from appliance.release.verify import check_not_older, extract_release, verify_release


def release_command(args: argparse.Namespace) -> int:
    action = args.release_command
    if action == "build":
        return _build(args)
    if action == "keygen":
        public = generate_key_pair(args.out)
        print(f"private key: {args.out} (keep it off the devices)\npublic key:  {public}: {public.read_text().strip()}")
        return EXIT_OK
    if action == "sign":
        _existing(args.release)
        signer = sign_artifact(args.release, load_private_key(args.key))
        print(f"signed {args.release} with key {signer}")
        return EXIT_OK
    return _verify(args)


def _existing(path: Path) -> None:
    if not path.is_file():
        raise UsageError(f"no release at {path}")


def _build(args: argparse.Namespace) -> int:
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    options = BuildOptions(
        source=args.source,
        out=args.out,
        wheel=args.wheel,
        extras=extras,
        with_dependencies=not args.no_deps,
        wheels_from=args.wheels_from,
        no_index=args.no_index,
    )
    out = build_release(options)
    print(out)
    return EXIT_OK


def _key_reference(value: str) -> str:
    """`--key` takes a public key file as a plain path, or a reference as in the config."""
    if not value.startswith(("env:", "file:")) and Path(value).is_file():
        return f"file:{value}"
    return value


def _verify(args: argparse.Namespace) -> int:
    # The config file alone, never the fleet-saved config in the state directory: the unprivileged
    # appliance writes that, and it must not choose the keys the root installer trusts.
    try:
        _existing(args.release)
        if args.extract_to is not None and args.extract_to.exists():
            raise UsageError(f"{args.extract_to} exists: --extract-to makes a new folder")
        references = [_key_reference(k) for k in args.key] or load_config(args.config).update.trusted_keys
        keys = trusted_keys(references)
        verified = verify_release(args.release, keys, args.sha256)
        check_not_older(verified.manifest.version, args.running, args.allow_downgrade)
        if args.extract_to is not None:
            extract_release(args.release, verified, args.extract_to)
    except ReleaseRefused as exc:
        if args.json:
            print(json.dumps({"ok": False, "code": exc.code.value, "message": exc.message}))
            return EXIT_FAILURE
        raise OperationalError(f"{exc.code.value}: {exc.message}") from None
    except (UsageError, ReleaseUsageError) as exc:
        if args.json:
            print(json.dumps({"ok": False, "code": "bad_usage", "message": str(exc)}))
            return EXIT_USAGE
        raise
    manifest = verified.manifest
    if args.json:
        print(json.dumps({"ok": True, "version": manifest.version, "signed_by": verified.signed_by,
                          "sha256": verified.sha256, "created": manifest.created,
                          "with_dependencies": manifest.with_dependencies}))  # fmt: skip
    else:
        print(f"appliance {manifest.version}: signed by key {verified.signed_by}, {len(manifest.files)} files verified")
    return EXIT_OK
