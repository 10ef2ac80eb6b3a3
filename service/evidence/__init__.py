"""Evidence files in one place: the upload parser that encrypts files as they arrive, the attachment rows and
their reading, and the blob store on disk. Reports, cases, dossier, retention and backup all use them."""
