"""The Kaggle client: the competition's data in, submissions out.

It may import `pipeline.core` only, and it is the only package that imports
``kaggle`` (and ``kagglesdk``), inside functions.  It uses
the real ``KaggleApi`` for what the kaggle CLI does, credential discovery and
client construction, and calls the kagglesdk service methods itself, because
the client's own download/submit helpers write straight to the final file,
have no timeout on the first request, sleep up to a minute between retries,
print to stdout and report a refused submission as a success.

- `credentials`: where credentials are found; scrubbing them out of text; importing the client.
- `retry`: backoff, Retry-After, and what a network failure was.
- `client`: the authenticated connection: timeouts, bounded retries, one-line errors.
- `datadir`: temporary files, safe unzipping, installing files and the manifest.
- `downloads`: `download` and `have_data`.
- `submissions`: `submit` and `list_submissions`.

Every failure is one line: `KaggleError` (exit 3), `StorageError` (exit 6) or
`BadInputError` (exit 1), and leaves the user's files as they were.
"""

from pipeline.kaggle_client.client import COMPETITION
from pipeline.kaggle_client.datadir import MANIFEST, REQUIRED
from pipeline.kaggle_client.downloads import download, have_data
from pipeline.kaggle_client.submissions import list_submissions, submit

__all__ = ["COMPETITION", "MANIFEST", "REQUIRED", "download", "have_data", "list_submissions", "submit"]
