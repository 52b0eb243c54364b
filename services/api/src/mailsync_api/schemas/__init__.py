"""HTTP request and response models; storage documents live in `mailsync_shared.storage`."""
