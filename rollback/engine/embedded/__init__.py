"""The `embedded` stack engine: a Pulumi Python program run in-process and applied with boto3.

Use: `EmbeddedEngine(store, clients, project).up(program_dir, stack, config)`,
with `config = load_stack_config(program_dir, stack, project)`.

- `runner`: runs the program under the SDK's own runtime with `monitor.EmbeddedMonitor`.
- `engine`: compares with the previous checkpoint, applies, deletes, stores the checkpoint.
- `checkpoint`: Pulumi's deployment format, version 3.
- `secrets`: Pulumi's passphrase secrets provider (config `secure:` values, checkpoint secrets).
- `stack_config`: reads Pulumi.<stack>.yaml.
- `resources`: one applier per supported resource type.

Importing this package imports neither pulumi nor boto3.
"""
