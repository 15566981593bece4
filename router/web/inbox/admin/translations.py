"""Japanese for the `/admin` pages (English is the source text; see `router.web.inbox.i18n`)."""

from __future__ import annotations

from router.web.inbox.i18n import register

register({
    # frame and sections
    "Admin sections": "管理メニュー",
    "Overview": "概要",
    "Agents": "エージェント",
    "Teams": "チーム",
    "Canned responses": "定型文",
    "SLA policies and calendars": "SLA ポリシーと営業カレンダー",
    "Channel status": "チャネルの状態",
    "Read-only: leads see these settings; only admins can change them.":
        "閲覧のみ: リーダーは設定を見ることができます。変更できるのは管理者だけです。",
    "{active} active ({online} online), {inactive} deactivated":
        "有効 {active} 人（オンライン {online} 人）、無効 {inactive} 人",
    "{count} teams": "{count} チーム",
    "{count} responses": "{count} 件",
    "{policies} policies, {calendars} calendars": "ポリシー {policies} 件、カレンダー {calendars} 件",
    "{waiting} waiting in the outbox": "送信待ち {waiting} 件",
    "{dead} dead": "送信失敗 {dead} 件",
    # notices after a change
    "The agent was created.": "エージェントを作成しました。",
    "The agent was saved. The admin UI now owns this agent: router.toml no longer changes them.":
        "エージェントを保存しました。このエージェントは管理画面で管理され、router.toml では変更されなくなります。",
    "The agent is managed by router.toml again; its entry there now applies.":
        "このエージェントは再び router.toml で管理されます。router.toml の設定が適用されました。",
    "The agent was deactivated: signed out everywhere, and their open tickets went back to the queue.":
        "エージェントを無効にしました。すべてのセッションを終了し、対応中のチケットをキューに戻しました。",
    "The agent can sign in again. They stay offline until they set their status.":
        "エージェントは再びサインインできます。本人がステータスを変えるまでオフラインのままです。",
    "The password was changed and the agent's sessions ended.":
        "パスワードを変更し、エージェントのセッションを終了しました。",
    "The team was created.": "チームを作成しました。",
    "The team was renamed.": "チーム名を変更しました。",
    "The canned response was created.": "定型文を作成しました。",
    "The canned response was saved.": "定型文を保存しました。",
    "The canned response was deleted.": "定型文を削除しました。",
    "The item is queued again and will be sent shortly.": "再送信を予約しました。まもなく送信されます。",
    # agents
    "New agent": "新しいエージェント",
    "Agents marked “router.toml” take their profile from {source}: every restart and reload applies it. "
    "Once you edit one here, the admin UI owns it and reloads no longer change it.":
        "「router.toml」と表示されたエージェントは {source} の設定に従い、再起動や再読み込みのたびに適用されます。"
        "ここで編集すると管理画面の管理となり、再読み込みでは変更されなくなります。",
    "Name": "名前",
    "Role": "役割",
    "Team": "チーム",
    "Skills": "スキル",
    "Languages": "対応言語",
    "Capacity": "担当上限",
    "Chat capacity": "チャット上限",
    "Status": "ステータス",
    "Open tickets": "対応中チケット",
    "Managed by": "管理元",
    "Admin UI": "管理画面",
    "Deactivated": "無効",
    "agent": "エージェント",
    "lead": "リーダー",
    "admin": "管理者",
    "online": "オンライン",
    "away": "離席中",
    "offline": "オフライン",
    "{count} open tickets": "対応中チケット {count} 件",
    "Managed by router.toml": "router.toml で管理",
    "Managed in the admin UI": "管理画面で管理",
    "Profile": "プロフィール",
    "This agent's profile comes from {source}. Saving here makes the admin UI own it: later changes to their "
    "entry in {source} are then ignored (you can hand them back below).":
        "このエージェントのプロフィールは {source} の設定です。ここで保存すると管理画面の管理となり、"
        "以後 {source} の変更は反映されません（下の操作で戻せます）。",
    "Initial password": "初期パスワード",
    "At least {count} characters. Give it to the agent in person.":
        "{count} 文字以上。エージェント本人に直接伝えてください。",
    "Leads steer the team and take no routed work; admins also change these settings.":
        "リーダーはチームを指揮し、自動割り当ては受けません。管理者はこれらの設定も変更できます。",
    "No team": "チームなし",
    "Separated by commas. Topics route on: {skills}": "カンマ区切り。トピックが使うスキル: {skills}",
    "Language codes separated by commas, e.g. ja, en": "言語コードをカンマ区切りで（例: ja, en）",
    "Open tickets routed to them at most.": "自動で割り当てる対応中チケットの上限です。",
    "Create agent": "エージェントを作成",
    "Setting a new password signs the agent out everywhere at once.":
        "新しいパスワードを設定すると、エージェントはすべての場所から直ちにサインアウトされます。",
    "New password": "新しいパスワード",
    "Set new password": "新しいパスワードを設定",
    "Account": "アカウント",
    "Deactivating signs {name} out everywhere, stops their password and API token from working, sets them "
    "offline and returns their {count} open tickets to the team queue, where they go to whoever fits. "
    "Their history stays.":
        "無効にすると、{name} はすべての場所からサインアウトされ、パスワードと API トークンが使えなくなり、"
        "オフラインになります。対応中のチケット {count} 件はチームのキューに戻り、対応できる人に割り当てられます。"
        "履歴は残ります。",
    "Deactivate agent": "エージェントを無効にする",
    "This agent is deactivated: they cannot sign in or use their API token.":
        "このエージェントは無効です。サインインも API トークンの利用もできません。",
    "Reactivate agent": "エージェントを再び有効にする",
    "Configuration file": "設定ファイル",
    "{source} also has an entry for this agent, ignored while the admin UI owns them. Handing them back applies "
    "that entry now and on every reload, replacing the profile above.":
        "{source} にもこのエージェントの設定がありますが、管理画面で管理している間は無視されます。"
        "設定ファイルに戻すと、その設定が今すぐ、また再読み込みのたびに適用され、上のプロフィールは置き換わります。",
    "Hand back to router.toml": "router.toml の管理に戻す",
    # teams
    "Teams named in {source} are renamed there: its topics and agents refer to them by name.":
        "{source} に書かれたチームの名前はそのファイルで変更してください。"
        "トピックとエージェントが名前で参照しています。",
    "Active agents": "有効なエージェント",
    "Rename": "名前を変更",
    "Rename it in {source}": "{source} で変更してください",
    "New name for {team}": "{team} の新しい名前",
    "New team": "新しいチーム",
    "Team name": "チーム名",
    "Create team": "チームを作成",
    # canned responses
    "New canned response": "新しい定型文",
    "Edit canned response": "定型文を編集",
    "Canned response": "定型文",
    "Agents insert these into replies on tickets in the same language; “any language” ones are offered on "
    "every ticket.":
        "エージェントは同じ言語のチケットへの返信にこれらを挿入できます。「すべての言語」の定型文はどのチケットでも使えます。",
    "Added here": "管理画面で追加",
    "From router.toml": "router.toml の定型文",
    "Any language": "すべての言語",
    "Text": "本文",
    "None yet.": "まだありません。",
    "None.": "ありません。",
    "Read-only here: edit them in {source}, then reload (SIGHUP) or restart.":
        "ここでは閲覧のみです。{source} を編集し、再読み込み（SIGHUP）または再起動してください。",
    "Placeholders filled in when an agent inserts it:": "挿入時に置き換えられるプレースホルダー:",
    "Write {{ and }} for literal braces.": "波括弧そのものは {{ と }} と書きます。",
    "Delete canned response": "定型文を削除",
    # SLA
    "From {source}, read-only here: edit the file, then reload (SIGHUP) or restart. New clocks use the new "
    "policies; running clocks keep the targets they started with.":
        "{source} の設定で、ここでは閲覧のみです。ファイルを編集し、再読み込み（SIGHUP）または再起動してください。"
        "新しい SLA は新しいポリシーを使い、進行中のものは開始時の目標のままです。",
    "Policies": "ポリシー",
    "A ticket gets the first policy that matches, in this order.":
        "チケットには、この順で最初に一致したポリシーが適用されます。",
    "Policy": "ポリシー",
    "Applies to": "対象",
    "Every ticket": "すべてのチケット",
    "Priority": "優先度",
    "Customer tier": "顧客ランク",
    "Customer channel": "受付チャネル",
    "Topic": "トピック",
    "First response": "初回応答",
    "Next response": "次回応答",
    "Resolution": "解決",
    "Warn at": "警告",
    "Calendar": "カレンダー",
    "Calendars": "営業カレンダー",
    "Hours": "営業時間",
    "Always open (24 hours, 7 days)": "常時営業（24時間365日）",
    "Closed all day": "休業",
    "Holidays": "祝日",
    "Not counted (always open)": "考慮しない（常時営業）",
    "Public holidays of {country} are closed": "{country} の祝日は休業",
    "None": "なし",
    "Also closed": "その他の休業日",
    "Monday": "月曜日",
    "Tuesday": "火曜日",
    "Wednesday": "水曜日",
    "Thursday": "木曜日",
    "Friday": "金曜日",
    "Saturday": "土曜日",
    "Sunday": "日曜日",
    # channels
    "Channels are set up with environment variables (their values are never shown). Times are in {timezone}.":
        "チャネルは環境変数で設定します（値は表示されません）。時刻は {timezone} です。",
    "Channel name": "チャネル",
    "Receives": "受信",
    "Sends": "送信",
    "Last message received": "最後の受信",
    "Waiting in the outbox": "送信待ち",
    "Oldest waiting": "最も古い送信待ち",
    "Dead": "送信失敗",
    "Configured": "設定済み",
    "Not configured": "未設定",
    "Set {variables}": "{variables} を設定してください",
    "{age} ago": "{age} 前",
    "Never": "なし",
    "Email": "メール",
    "Web form": "Web フォーム",
    "Integration API": "連携 API",
    "Live chat": "ライブチャット",
    "Slack (SLA alerts)": "Slack（SLA アラート）",
    "Dead outbox items": "送信に失敗した項目",
    "Items the outbox gave up on: a permanent refusal, too many failed attempts, or an interrupted send.":
        "送信をあきらめた項目です（恒久的な拒否、失敗の繰り返し、または送信中の中断）。",
    "Retrying sends the item again. Each item is delivered at most once on its own, so an item whose send was "
    "interrupted (the process stopped mid-send) is never retried automatically: it may already have arrived, "
    "and retrying it may deliver it twice. Check with the customer or the platform first.":
        "再送信すると、その項目をもう一度送ります。各項目は自動では最大 1 回しか配信されないため、"
        "送信中に中断された項目（送信の途中でプロセスが停止したもの）は自動では再送されません。すでに届いている可能性があり、再送信すると"
        "二重に届くことがあります。先にお客様や送信先サービスで確認してください。",
    "Showing the newest {shown} of {total}.": "全 {total} 件のうち新しい {shown} 件を表示しています。",
    "Item": "項目",
    "Kind": "種類",
    "Ticket": "チケット",
    "Recipient": "宛先",
    "Attempts": "試行回数",
    "Error": "エラー",
    "Queued at": "登録日時",
    "Action": "操作",
    "Interrupted mid-send: it may have arrived.": "送信中に中断: すでに届いている可能性があります。",
    "Retry": "再送信",
    "No dead items.": "送信に失敗した項目はありません。",
})
