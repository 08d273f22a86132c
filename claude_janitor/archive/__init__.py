"""Archives: one verified, compressed file per session; restore; archive retention.

format       the format's names and constants, header checks, where archives live on disk
walk         walking a session's pieces (dir fds, no symlinks followed, no mounts crossed)
writer       one session into a tar + zstd stream with its header and manifest
reader       reading an archive: its header, or all of it verified against its manifest
store        write → fsync → verify → publish one session's archive, then remove the originals
maintenance  list, clean temp leftovers, prune past archive_retention, find a session's archive
restore      put an archived session back, never overwriting a live file
"""
