#!/bin/bash
# Build the OLD producer environments and (re)write their committed fixtures with
# fixtures/generate_legacy.py, then merge every fixtures/*/manifest.json.
# Slow (downloads ~10 TensorFlow releases); NOT part of .ci/run. Run from anywhere:
#   bash tools/legacy_producers.sh              # every producer
#   bash tools/legacy_producers.sh tf24-py38    # some of them
# Environments go to $LEGACY_ENVS (default /work/envs); needs pyenv (Python 3.6-3.13) and uv.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENVS=${LEGACY_ENVS:-/work/envs}
PY=$(pyenv root)/versions
declare -A SPEC=(
  [tf115-keras224-py37]="3.7 tensorflow==1.15.5 protobuf<3.21 h5py<3"
  [keras231-tf115-py37]="3.7 tensorflow==1.15.5 keras==2.3.1 protobuf<3.21 h5py<3"
  [keras122-tf115-py37]="3.7 tensorflow==1.15.5 keras==2.3.1 protobuf<3.21 h5py<3"
  [keras224-tf115-py37]="3.7 tensorflow==1.15.5 keras==2.2.4 protobuf<3.21 h5py<3"
  [keras216-tf115-py37]="3.7 tensorflow==1.15.5 keras==2.1.6 protobuf<3.21 h5py<3"
  [keras224-tf112-py36]="3.6 tensorflow==1.12.3 keras==2.2.4 protobuf<3.21 h5py<3"
  [keras216-tf112-py36]="3.6 tensorflow==1.12.3 keras==2.1.6 protobuf<3.21 h5py<3"
  [tf14-keras208-py36]="3.6 tensorflow==1.4.1 protobuf<3.21 h5py<3"
  [tf20-py37]="3.7 tensorflow==2.0.4 protobuf<3.21 h5py<3"
  [tf24-py38]="3.8 tensorflow-cpu==2.4.4 protobuf<3.21"
  [tf28-py39]="3.9 tensorflow-cpu==2.8.4 protobuf<3.20 numpy<2"
  [tf211-py310]="3.10 tensorflow-cpu==2.11.1 protobuf<3.20 numpy<2"
  [tf221-keras3-py313]="3.13 tensorflow-cpu==2.21.0 keras==3.15.1"
)
#: the tf.keras 2.x producers that also write SavedModels (fixtures/saved_model/<env>/)
SAVED_MODEL=(tf20-py37 tf24-py38 tf28-py39 tf211-py310)
#: the producers that commit a sample of the generated corpus (fixtures/generate.py --add-corpus-sample)
CORPUS_SAMPLE=(tf115-keras224-py37 keras231-tf115-py37 keras224-tf115-py37 keras216-tf115-py37 tf20-py37 tf24-py38 tf28-py39 tf211-py310)
#: of those, the ones written with the standalone keras package (fixtures/generate.py --standalone)
STANDALONE_CORPUS=(keras231-tf115-py37 keras224-tf115-py37 keras216-tf115-py37)
#: of those, the ones that commit the corpus sample alone (no generate_legacy.py core fixtures)
CORPUS_ONLY=(keras224-tf115-py37 keras216-tf115-py37)
#: Keras 1 (fixtures/generate_keras1.py): Keras 1.2.2 (its source on PYTHONPATH) writes, the env's
#: standalone Keras 2.3.1 writes the truth; committed whole
KERAS1_CORPUS=(keras122-tf115-py37)
#: Python 3.6 producers whose corpus fixtures/generate_py36.py writes (TF 1.4's tf.keras: no other Python
#: has it); committed whole (the sample, then the whole corpus): no matrix row regenerates it
PY36_CORPUS=(tf14-keras208-py36)
names=("$@")
# keras224/216-tf115-py37: their corpus samples only (the core cases are keras224/216-tf112-py36's; size
# budget). Standalone Keras 2.2.4 and 2.1.6 write their corpus on TF 1.15 / Python 3.7; TF 1.4 exists for
# Python 3.6 only: fixtures/generate_py36.py runs fixtures/generate.py there
[ ${#names[@]} -gt 0 ] || names=(tf115-keras224-py37 keras231-tf115-py37 keras122-tf115-py37 keras224-tf115-py37 keras216-tf115-py37
                               keras224-tf112-py36
                               keras216-tf112-py36 tf14-keras208-py36 tf20-py37 tf24-py38 tf28-py39 tf211-py310 tf221-keras3-py313)
for env in "${names[@]}"; do
  read -r pyver pkgs <<<"${SPEC[$env]}"
  python=$(ls -d "$PY/$pyver".*/bin/python | tail -1)
  venv=$ENVS/old-$env
  if [ ! -f "$venv/.ok" ]; then
    rm -rf "$venv"
    uv venv -q -p "$python" "$venv"
    # shellcheck disable=SC2086
    uv pip install -q --python "$venv/bin/python" $pkgs
    touch "$venv/.ok"
  fi
  echo "== $env"
  log=$(mktemp)
  if [[ " ${CORPUS_ONLY[*]} ${KERAS1_CORPUS[*]} " == *" $env "* ]]; then
    rm -rf "$ROOT/fixtures/$env"
  elif ! TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0 "$venv/bin/python" "$ROOT/fixtures/generate_legacy.py" --env "$env" \
      >"$log" 2>&1; then
    tail -20 "$log"; echo "$env: generator failed" >&2; exit 1
  fi
  grep '^\[generate_legacy\]' "$log" || true
  if [[ " ${SAVED_MODEL[*]} " == *" $env "* ]]; then  # tf.keras 2.x: SavedModels too (uses ckptcompat's runtime)
    uv pip install -q --python "$venv/bin/python" packaging typing_extensions importlib_metadata
    if ! CKPTCOMPAT_MATRIX_ENV=$env PYTHONPATH=$ROOT TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0 "$venv/bin/python" \
        "$ROOT/fixtures/generate_saved_model.py" --out "$ROOT/fixtures/saved_model/$env" >"$log" 2>&1; then
      tail -20 "$log"; echo "$env: SavedModel generator failed" >&2; exit 1
    fi
    grep '^\[generate_saved_model\]' "$log" || true
  fi
  if [[ " ${CORPUS_SAMPLE[*]} " == *" $env "* ]]; then  # every optimizer and the layer zoo (uses ckptcompat)
    uv pip install -q --python "$venv/bin/python" packaging typing_extensions importlib_metadata
    standalone=(); [[ " ${STANDALONE_CORPUS[*]} " == *" $env "* ]] && standalone=(--standalone)
    if ! PYTHONPATH=$ROOT TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0 "$venv/bin/python" "$ROOT/fixtures/generate.py" \
        "${standalone[@]}" --env "$env" --add-corpus-sample "$ROOT/fixtures/$env" >"$log" 2>&1; then
      tail -20 "$log"; echo "$env: corpus sample generator failed" >&2; exit 1
    fi
    grep '^\[generate\]' "$log" || true
  fi
  if [[ " ${PY36_CORPUS[*]} " == *" $env "* ]]; then
    uv pip install -q --python "$venv/bin/python" dataclasses packaging typing_extensions importlib_metadata
    for mode in --add-corpus-sample --add-corpus; do
      if ! TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0 "$venv/bin/python" "$ROOT/fixtures/generate_py36.py" \
          --standalone --env "$env" "$mode" "$ROOT/fixtures/$env" >"$log" 2>&1; then
        tail -20 "$log"; echo "$env: Python 3.6 corpus generator failed" >&2; exit 1
      fi
      grep '^\[generate\]' "$log" || true
    done
  fi
  if [[ " ${KERAS1_CORPUS[*]} " == *" $env "* ]]; then
    uv pip install -q --python "$venv/bin/python" packaging typing_extensions importlib_metadata
    [ -d "$ENVS/keras-1.2.2/keras" ] || uv pip install -q --no-deps --target "$ENVS/keras-1.2.2" keras==1.2.2
    work=$(mktemp -d)
    if ! KERAS_BACKEND=tensorflow PYTHONPATH=$ENVS/keras-1.2.2 TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0 \
        "$venv/bin/python" "$ROOT/fixtures/generate_keras1.py" --phase write --work "$work" >"$log" 2>&1 ||
       ! TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0 "$venv/bin/python" "$ROOT/fixtures/generate_keras1.py" \
        --phase truth --work "$work" >"$log" 2>&1; then
      tail -20 "$log"; echo "$env: Keras 1 generator failed" >&2; exit 1
    fi
    rm -rf "$work"
  fi
  rm -f "$log"
done
python3 "$ROOT/fixtures/generate.py" --merge
