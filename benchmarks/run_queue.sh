#!/usr/bin/env bash
# Runs the benchmarks listed in benchmarks/queue.txt, one at a time, through benchmarks/record.py.
# Lines: NAME<TAB>COMMAND[<TAB>RECORD OPTIONS], the options record.py writes into the record for the
# report (--section=ID --label='TEXT' ...; see benchmarks/record.py). A NAME whose record exists with exit
# code 0 is skipped, so the script resumes.
# The file is re-read after every run, so lines can be appended while it works.
#   bash benchmarks/run_queue.sh [QUEUE_FILE]
# The MLPs (Ladder, SS-VAE) use two cores poorly; two queues (lines copied from queue.txt) can run side by side,
# one per core:  taskset -c 0 bash benchmarks/run_queue.sh A.txt & taskset -c 1 bash benchmarks/run_queue.sh B.txt
# Not for the ResNets: the default pretraining pinned to one core ran at 52 img/s, against 480 on both cores.
set -u
here=$(cd "$(dirname "$0")" && pwd)
queue=${1:-$here/queue.txt}
while true; do
  next=""
  while IFS=$'\t' read -r name command options; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    record="$here/results/$name.json"
    if [[ -f "$record" ]] && python -c "import json,sys; sys.exit(json.load(open('$record'))['exit_code'])"; then
      continue
    fi
    next="$name"; next_command="$command"; next_options="${options:-}"; break
  done < "$queue"
  [[ -z "$next" ]] && break
  echo "$(date +%H:%M:%S) start $next"
  eval "python $here/record.py $next $next_options -- $next_command"
done
echo "$(date +%H:%M:%S) queue done"
