"""A test-only entry point that declares nothing: its preview deletes every resource of the stack.

`make fixtures` records it to show what the real CLI previews when a cluster, vault, key, identity and grant are
deleted.
"""
