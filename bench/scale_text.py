"""Realistic support text for the scale fill: Japanese and English sentences, subjects and names.

Messages are made of these pieces, so the words an agent searches for occur as often as in a real
inbox: `返金` (refund) is in 1 of the 40 Japanese sentences (a few % of tickets), `請求` in 3.
"""

from __future__ import annotations

JA_SENTENCES = (
    "請求書の金額が間違っています。",
    "返金をお願いします。",
    "先月の請求について確認させてください。",
    "クレジットカードで二重に請求されています。",
    "支払い方法を変更したいです。",
    "領収書を発行していただけますか。",
    "ログインするとエラーが表示されます。",
    "パスワードを再設定してもログインできません。",
    "アプリが起動直後に落ちてしまいます。",
    "画面が真っ白になって何も表示されません。",
    "二段階認証のコードが届きません。",
    "アップデート後に不具合が発生しました。",
    "注文した商品がまだ届かないのですが。",
    "配送状況を教えてください。",
    "追跡番号を入力しても情報が出てきません。",
    "届いた商品が破損していました。",
    "発送予定日はいつになりますか。",
    "お届け先の住所を変更したいです。",
    "至急対応をお願いいたします。",
    "お手数をおかけしますが、よろしくお願いいたします。",
    "昨日から何度か問い合わせています。",
    "担当の方からの連絡をお待ちしております。",
    "解約の手続きについて教えてください。",
    "プランの変更は可能でしょうか。",
    "会員情報のメールアドレスを変更したいです。",
    "キャンペーンの割引が適用されていません。",
    "ポイントの有効期限を知りたいです。",
    "営業時間を教えてください。",
    "スクリーンショットを添付します。",
    "同じ問題が家族のアカウントでも起きています。",
    "サイズ交換はできますか。",
    "商品の色が写真と違います。",
    "定期購入をしばらく停止したいです。",
    "メールマガジンの配信を止めてください。",
    "電話がつながらなかったのでこちらから連絡しました。",
    "前回のお問い合わせの続きです。",
    "こちらの環境はiPhoneの最新版です。",
    "Windows のパソコンから利用しています。",
    "ご確認のほどよろしくお願いいたします。",
    "ありがとうございました。",
)
EN_SENTENCES = (
    "My invoice shows the wrong amount.",
    "Please refund the difference to my card.",
    "I was charged twice for the same order.",
    "Can I change my payment method?",
    "I need a receipt for my company.",
    "The app crashes as soon as I open it.",
    "I cannot log in even after resetting my password.",
    "I get an error message when I try to sign in.",
    "The page stays blank after the latest update.",
    "The two-factor code never arrives.",
    "My order has not arrived yet.",
    "The tracking number does not show anything.",
    "The package arrived damaged.",
    "When will my order ship?",
    "I would like to change the delivery address.",
    "This is urgent, please help.",
    "I have written to you several times already.",
    "Could someone get back to me today?",
    "How do I cancel my subscription?",
    "Can I switch to the yearly plan?",
    "I want to update the email address on my account.",
    "The discount code was not applied at checkout.",
    "When do my loyalty points expire?",
    "What are your opening hours?",
    "I attached a screenshot of the problem.",
    "The same thing happens on my husband's account.",
    "Can I exchange the item for a larger size?",
    "The colour is different from the photo.",
    "Please pause my subscription for two months.",
    "Please stop sending me the newsletter.",
    "I tried calling but nobody answered.",
    "This is a follow-up to my previous message.",
    "I am using the latest iPhone.",
    "I am on a Windows laptop with Chrome.",
    "Thanks in advance for your help.",
    "Best regards.",
    "The export to CSV fails with a timeout.",
    "Our whole team is affected since this morning.",
    "Is there an outage right now?",
    "I would like to speak to a manager.",
)
JA_SUBJECTS = ("ご請求について", "ログインできません", "配送について", "返品・交換の相談", "アカウントについて",
               "至急：支払いの件", "アプリの不具合", "お問い合わせ")
EN_SUBJECTS = ("Invoice problem", "Login error", "Where is my order?", "Refund request", "Account question",
               "Urgent: payment issue", "App crash", "Question")
JA_SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田",
               "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水")
JA_GIVEN = ("愛子", "翔太", "美咲", "大輔", "陽菜", "健一", "さくら", "拓也", "結衣", "直樹", "真由美", "蓮")
EN_SURNAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark",
               "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams")
EN_GIVEN = ("Emma", "Liam", "Olivia", "Noah", "Ava", "James", "Sophia", "Lucas", "Mia", "Ethan", "Chloe", "Jack")
REPLIES = {
    "ja": "お問い合わせいただきありがとうございます。担当者が確認のうえ、改めてご連絡いたします。",
    "en": "Thanks for reaching out. We are looking into it and will get back to you shortly.",
}


def names() -> list[tuple[str, str]]:
    """(language, full name) of every customer name the fill uses."""
    japanese = [("ja", f"{surname} {given}") for surname in JA_SURNAMES for given in JA_GIVEN]
    english = [("en", f"{given} {surname}") for surname in EN_SURNAMES for given in EN_GIVEN]
    return japanese + english
