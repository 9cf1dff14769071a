import { useApp, useInput, useStdin, useStdout } from 'ink'
import { useCallback, useEffect, useReducer, useRef, useState } from 'react'
import { controlRequest } from '../../runtime/control-client.ts'
import type { DemoFeed } from '../demo-feed.ts'
import { initialState, reduce, type UiInput, type UiState } from '../model.ts'
import type { Theme } from '../theme.ts'
import { nodeRows } from '../view.ts'
import { WatchConnection } from '../watch-connection.ts'
import { Screen } from './Screen.tsx'

export interface LiveUiProps {
  /** The node's control socket; null until a demo says which node to watch. */
  socket_path: string | null
  theme: Theme
  title: string
  demo?: DemoFeed
  interval_ms?: number
  retry_ms?: number
  /** Monotonic epoch milliseconds (injected by tests). */
  now?: () => number
}

const TICK_MS = 1000
const LEAVE_PROMPT =
  'Leave the federation? This node hands over (if it serves) and stops. y = leave, n = cancel'

const monotonic = () => performance.timeOrigin + performance.now()

function useTerminalSize(): { columns: number; rows: number } {
  const { stdout } = useStdout()
  const read = useCallback(() => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 }), [stdout])
  const [size, setSize] = useState(read)
  useEffect(() => {
    const onResize = () => setSize(read())
    stdout.on('resize', onResize)
    return () => {
      stdout.off('resize', onResize)
    }
  }, [stdout, read])
  return size
}

/** The live screen: watches a node, keeps the UI state, handles keys. */
export function LiveUi(props: LiveUiProps) {
  const now = props.now ?? monotonic
  const [state, dispatch] = useReducer(
    (s: UiState, input: UiInput) => reduce(s, input, now()),
    undefined,
    () => {
      let s = initialState(now())
      for (const line of props.demo?.lines ?? []) s = reduce(s, { type: 'demo', line }, now())
      return s
    },
  )
  const [socket_path, setSocketPath] = useState(
    props.socket_path ?? props.demo?.attached?.socket_path ?? null,
  )
  const [demo_running, setDemoRunning] = useState(props.demo !== undefined && props.demo.report === null)
  const [selected, setSelected] = useState<string | null>(null)
  const [confirming, setConfirming] = useState(false)
  const { exit } = useApp()
  const { isRawModeSupported } = useStdin()
  const size = useTerminalSize()
  // Ink re-subscribes the key handler after each commit; a key that arrives before that must still see
  // the current screen, so the handler reads through this ref.
  const current = useRef({ keys: [] as string[], confirming, demo_running, socket_path })
  current.current = { keys: nodeRows(state).map((r) => r.key), confirming, demo_running, socket_path }

  useEffect(() => {
    const feed = props.demo
    if (!feed) return
    const onLine = (line: string) => dispatch({ type: 'demo', line })
    const onAttach = (path: string) => setSocketPath(path)
    const onFinished = (report: string) => {
      dispatch({ type: 'demo', line: report })
      dispatch({ type: 'demo', line: 'demo finished: press q to quit' })
      setSocketPath(null) // keep the last view; the federation is about to be torn down
      setDemoRunning(false)
    }
    feed.on('line', onLine).on('attach', onAttach).on('finished', onFinished)
    return () => {
      feed.off('line', onLine).off('attach', onAttach).off('finished', onFinished)
    }
  }, [props.demo])

  useEffect(() => {
    if (socket_path === null) return
    const connection = new WatchConnection(
      socket_path,
      {
        connected: () => dispatch({ type: 'connected' }),
        lost: (reason) => dispatch({ type: 'lost', reason }),
        status: (status) => dispatch({ type: 'status', status }),
        notice: (notice) => dispatch({ type: 'notice', notice }),
      },
      { interval_ms: props.interval_ms ?? 250, retry_ms: props.retry_ms ?? 500 },
    )
    connection.start()
    return () => connection.close()
  }, [socket_path, props.interval_ms, props.retry_ms])

  useEffect(() => {
    const timer = setInterval(() => dispatch({ type: 'tick' }), TICK_MS)
    return () => clearInterval(timer)
  }, [])

  const command = (cmd: 'snapshot' | 'leave', done: string) => {
    const socket_path = current.current.socket_path
    if (socket_path === null) {
      dispatch({ type: 'note', text: `${cmd}: not attached to a node yet`, tone: 'warn' })
      return
    }
    dispatch({ type: 'note', text: `${cmd} requested`, tone: 'info' })
    controlRequest(socket_path, { cmd }, () => {}).then(
      () => dispatch({ type: 'note', text: done, tone: 'info' }),
      (error: Error) => dispatch({ type: 'note', text: `${cmd} failed: ${error.message}`, tone: 'fault' }),
    )
  }

  useInput(
    (input, key) => {
      const now_ui = current.current
      if (now_ui.confirming) {
        now_ui.confirming = false
        setConfirming(false)
        if (input === 'y' || input === 'Y') command('leave', 'the node left')
        else dispatch({ type: 'note', text: 'leave cancelled', tone: 'info' })
        return
      }
      if (input === 'q') {
        if (now_ui.demo_running)
          dispatch({ type: 'note', text: 'the demo is still running; Ctrl+C stops it', tone: 'warn' })
        else exit()
      } else if (input === 's') command('snapshot', 'snapshot accepted by the node')
      else if (input === 'l') {
        now_ui.confirming = true
        setConfirming(true)
      } else if (key.upArrow || key.downArrow) {
        const keys = now_ui.keys
        if (keys.length === 0) return
        setSelected((previous) => {
          const at = Math.max(0, keys.indexOf(previous ?? keys[0]!))
          return keys[key.upArrow ? Math.max(0, at - 1) : Math.min(keys.length - 1, at + 1)]!
        })
      }
    },
    { isActive: isRawModeSupported === true },
  )

  return (
    <Screen
      state={state}
      columns={size.columns}
      lines={Math.max(1, size.rows - 1)}
      theme={props.theme}
      selected={selected}
      prompt={confirming ? LEAVE_PROMPT : null}
      keys={isRawModeSupported === true}
      title={props.title}
      target={socket_path ?? "the demo's nodes (starting)"}
      demo={props.demo !== undefined}
      demo_running={demo_running}
    />
  )
}
