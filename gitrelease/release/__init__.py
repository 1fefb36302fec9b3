"""The release side, run in a release clone: bump the version (`bump`), write the changelog
(`changelog`), commit, tag and push as one transaction (`cut`), and the pre-push check of the
tags about to be pushed (`prepush`)."""
