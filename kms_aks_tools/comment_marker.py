"""The marker that names one stack's PR comment, so each push updates that comment instead of adding one.

`kms-aks changes --markdown` (`kms_aks_tools.change_summary`) writes it at the end of the comment;
`kms_aks_tools.pr_comment` finds the comment by it. Its own module, so that posting a comment loads nothing else.
"""

MARKER = "<!-- kms-aks-comment stack={stack} -->"
