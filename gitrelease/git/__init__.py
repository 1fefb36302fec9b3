"""git, through one runner (`repo.GitRepo`) whose output is parsed into `records` and whose
failures `stderr` names: release tags and their versions, signatures, the release snapshot a
deployment sees, the working tree a command works on, and the git hooks gitrelease installs."""
