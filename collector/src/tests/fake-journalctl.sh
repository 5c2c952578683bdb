#!/bin/sh
# A fake journalctl for the tests: `sh fake-journalctl.sh <entries.ndjson> <journalctl args>`
# prints the entries of the file after the one whose cursor `--after-cursor=` names (all of
# them without it), then follows the file as `--follow` does. Every call's arguments are
# appended to <entries.ndjson>.args.
file="$1"
shift
printf '%s\n' "$*" >> "$file.args"
after=""
for arg in "$@"; do
  case "$arg" in
    --after-cursor=*) after="${arg#--after-cursor=}" ;;
  esac
done
start=1
if [ -n "$after" ]; then
  line=$(grep -n -F "\"__CURSOR\":\"$after\"" "$file" | head -n 1 | cut -d: -f1)
  if [ -n "$line" ]; then
    start=$((line + 1))
  fi
fi
exec tail -n +"$start" -f "$file"
