# bash completion for reelctl: source it, or copy to /etc/bash_completion.d/reelctl.
_reelctl() {
  local cur prev words cword
  _init_completion 2>/dev/null || { cur="${COMP_WORDS[COMP_CWORD]}"; prev="${COMP_WORDS[COMP_CWORD-1]}"; }
  local commands="submit get list cancel watch workers pause resume retry priority drain logs health wait purge open"
  local global="--server --json --token --insecure --tls-ca --help"
  case "$prev" in
    -f|--file) COMPREPLY=($(compgen -f -X '!*.@(yaml|yml|json)' -- "$cur")); return ;;
    --state) COMPREPLY=($(compgen -W "queued running succeeded failed cancelled paused waiting" -- "$cur")); return ;;
    --model) COMPREPLY=($(compgen -W "bicubic lanczos" -- "$cur")); return ;;
    --scale) COMPREPLY=($(compgen -W "2 3 4" -- "$cur")); return ;;
  esac
  local cmd="" w
  for w in "${COMP_WORDS[@]:1}"; do
    case " $commands " in *" $w "*) cmd="$w"; break ;; esac
  done
  case "$cmd" in
    "") COMPREPLY=($(compgen -W "$commands $global" -- "$cur")) ;;
    submit) COMPREPLY=($(compgen -W "upscale -f --file --set --dry-run --watch --input --output --model --scale --chunk --crf --priority --name --project --overwrite --depends-on --require --request-id --max-attempts --webhook" -- "$cur")) ;;
    list) COMPREPLY=($(compgen -W "--limit --state --project --since" -- "$cur")) ;;
    drain) COMPREPLY=($(compgen -W "--undo" -- "$cur")) ;;
    logs) COMPREPLY=($(compgen -W "--task --follow" -- "$cur")) ;;
    wait) COMPREPLY=($(compgen -W "--timeout" -- "$cur")) ;;
    purge) COMPREPLY=($(compgen -W "--older-than --dry-run" -- "$cur")) ;;
    *) COMPREPLY=() ;;
  esac
}
complete -F _reelctl reelctl
