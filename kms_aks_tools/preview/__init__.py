"""The `pulumi preview --json` document: its model and how its values are read (shared by guard and changes)."""
