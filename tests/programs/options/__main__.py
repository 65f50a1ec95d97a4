"""Buckets whose resource options come from config: the resource-option tests drive it.

Config (project `opts`): `name` (logical name of the main bucket, default
`main`), `bucket` (its physical name; empty = auto-named), `env` (a tag),
`team` (a tag), `present` (false = declare nothing), `protect`, `retain`,
`ignore` and `replaceOn` (comma-separated property paths), `dbr`
(deleteBeforeReplace: true/false, unset = the engine decides), `alias` (the
logical name it had before), `import` (an existing bucket to adopt),
`timeout` (customTimeouts create), `dependent` (a second bucket that
depends_on the first).
"""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()


def paths(key: str) -> list[str] | None:
    value = config.get(key)
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


if config.get_bool("present") is not False:
    dbr = config.get_bool("dbr")
    main = aws.s3.Bucket(
        config.get("name") or "main",
        bucket=config.get("bucket") or None,
        tags={"env": config.get("env") or "dev", "team": config.get("team") or "a"},
        opts=pulumi.ResourceOptions(
            protect=config.get_bool("protect") or False,
            retain_on_delete=config.get_bool("retain") or False,
            ignore_changes=paths("ignore"),
            replace_on_changes=paths("replaceOn"),
            delete_before_replace=dbr,
            aliases=[pulumi.Alias(name=config.get("alias"))] if config.get("alias") else None,
            import_=config.get("import") or None,
            custom_timeouts=pulumi.CustomTimeouts(create=config.get("timeout"))
            if config.get("timeout")
            else None,
        ),
    )
    pulumi.export("bucket", main.id)
    if config.get("dependent"):
        dependent = aws.s3.Bucket(
            "dependent",
            bucket=config.get("dependent"),
            opts=pulumi.ResourceOptions(depends_on=[main]),
        )
        pulumi.export("dependent", dependent.id)
