package mailgen

// The words of the generated mail: who writes, in which language, about what.
// Templates use {ref} (booking reference), {date} (event date), {guests},
// {amount}, {inv} (invoice number), {event}, {city}, {name} and {first}.

type topic int

const (
	topicBooking topic = iota
	topicPayment
	topicRefund
	topicInvoice
	topicInquiry
	topicChange
	numTopics
)

// person is a display name and the ASCII address built from it.
type person struct {
	name  string // display name as written, may need quoting or RFC 2047
	first string // for greetings
	local string // local part of the address
}

type locale struct {
	tag      string
	weight   int
	charsets []*charset // the customer's mail client picks one of these
	tz       []int      // UTC offsets in minutes
	domains  []string
	people   []person
	subjects [numTopics][]string
	bodies   [numTopics][]string
	followUp []string
	greeting []string
	closing  []string
	events   []string
	cities   []string
	months   [12]string
	dateFmt  string // {d} {m} {y}
	textRef  string // label before the per-message token in the text part
	htmlRef  string // label before it in the HTML part
	wrote    string // reply attribution line, {date} {name}
	currency string // "$" or "€": where the amount symbol goes is in amount()
	files    [3][]string
}

var locales = []*locale{en, de, fr, es, ru, ja}

var en = &locale{
	tag:      "en",
	weight:   62,
	charsets: []*charset{csUTF8, csUTF8, csUTF8, csUTF8, csLatin1, csWin1252, csWin1252},
	tz:       []int{-7 * 60, -8 * 60, -5 * 60, -6 * 60},
	domains:  []string{"gmail.com", "gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "comcast.net", "acme-events.com", "brightpath.io"},
	people: []person{
		{"Alice Johnson", "Alice", "alice.johnson"},
		{"Smith, John", "John", "jsmith"},
		{`John "Johnny" Doe`, "John", "johnny.doe"},
		{"Patrick O'Brien", "Patrick", "pobrien"},
		{"Dr. Jane Roe", "Jane", "jane.roe"},
		{"Maria Garcia", "Maria", "maria.garcia"},
		{"Kevin Nguyen", "Kevin", "kevin.nguyen"},
		{"Emily Chen", "Emily", "emily.chen"},
		{"Wilson, Robert (Bob)", "Bob", "bob.wilson"},
		{"Acme Events, Inc.", "there", "bookings"},
		{"Chloé Anderson", "Chloé", "chloe.anderson"},
		{"Zoë Baker", "Zoë", "zoe.baker"},
		{"Michael Brown", "Michael", "mbrown"},
		{"Sarah Miller", "Sarah", "sarah.miller"},
		{"David Kim", "David", "dkim"},
		{"Jessica Taylor", "Jessica", "jess.taylor"},
		{"", "there", "events.planner"},
	},
	subjects: [numTopics][]string{
		topicBooking: {"Booking request for {date}", "Hibachi party on {date} - {guests} guests", "Availability for {event} on {date}?", "Reservation for {guests} people"},
		topicPayment: {"Payment question", "Question about my deposit", "Payment failed for booking {ref}", "How do I pay the balance?"},
		topicRefund:  {"Refund request - booking {ref}", "Refund for cancelled event", "Still waiting on my refund"},
		topicInvoice: {"Invoice {inv}", "Invoice request for {event}", "Need an itemized invoice for {ref}"},
		topicInquiry: {"Catering inquiry for wedding", "Catering inquiry for {event} ({guests} guests)", "Quote for corporate lunch", "Do you travel to {city}?"},
		topicChange:  {"Change of party size - {ref}", "Reschedule {date} booking", "Cancellation – booking {ref}", "Menu change for Saturday’s party"},
	},
	bodies: [numTopics][]string{
		topicBooking: {
			"We'd like to book a hibachi chef for {event} on {date}. We expect about {guests} guests, mostly adults and a few kids.",
			"Our backyard has a covered patio with power outlets. Is there anything else you need from us, like tables or propane?",
			"Could you let me know the total price including the travel fee to {city}?",
		},
		topicPayment: {
			"I tried to pay the deposit of {amount} for booking {ref} but the card was declined twice, although the bank says everything is fine.",
			"Can I pay the rest by Zelle or does it have to be a card? Also, is the 18% gratuity included in the quote?",
		},
		topicRefund: {
			"We had to cancel our event on {date} because of a family emergency. I paid a {amount} deposit on booking {ref}.",
			"Your policy says deposits are refundable up to 7 days before the event, and we cancelled 12 days before. When can I expect the refund?",
		},
		topicInvoice: {
			"Our accounting department needs an itemized invoice for booking {ref} ({amount}), addressed to our company.",
			"Please include the tax ID and the date of service ({date}). A PDF is fine.",
		},
		topicInquiry: {
			"I'm planning {event} for around {guests} people on {date} near {city} and I'm interested in your hibachi catering.",
			"Do you offer vegetarian and gluten-free options? Some guests also can’t eat shellfish.",
			"What is the minimum spend, and how long does the chef stay? Our venue is a small café with a garden.",
		},
		topicChange: {
			"We need to change the party size on booking {ref} from {guests} to a few more people.",
			"Is it still possible to move the start time to 6:30 pm on {date}? Sorry for the short notice.",
		},
	},
	followUp: []string{"Thanks for the quick reply!", "That works for us. Could you also send the menu options?", "Just following up on this, I haven't heard back yet.", "Perfect, see you on {date}!"},
	greeting: []string{"Hi,", "Hello,", "Hi there,", "Good morning,"},
	closing:  []string{"Thanks,", "Best regards,", "Thank you!", "Cheers,"},
	events:   []string{"a birthday party", "our wedding", "a graduation party", "a company picnic", "an anniversary dinner"},
	cities:   []string{"San Jose", "Sacramento", "Fremont", "Napa", "Santa Cruz", "Palo Alto"},
	months:   [12]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
	dateFmt:  "{m} {d}, {y}",
	textRef:  "Booking reference for follow-ups",
	htmlRef:  "Our reference",
	wrote:    "On {date}, {name} wrote:",
	currency: "$",
	files: [3][]string{
		kindPDF: {"Invoice-{inv}.pdf", "MyHibachi Quote {ref}.pdf", "receipt_{inv}.pdf", "Catering Menu 2025.pdf"},
		kindPNG: {"IMG_{n}.png", "Screenshot 2025-03-14 at 14.22.31.png", "venue photo.png", "menu – page 2.png"},
		kindCSV: {"payments-export-{n}.csv", "bookings_2025.csv", "guest list.csv"},
	},
}

var de = &locale{
	tag:      "de",
	weight:   10,
	charsets: []*charset{csUTF8, csUTF8, csLatin1, csLatin9, csWin1252},
	tz:       []int{60, 120},
	domains:  []string{"web.de", "gmx.de", "t-online.de", "gmail.com", "firma-schulz.de"},
	people: []person{
		{"Jürgen Müller", "Jürgen", "juergen.mueller"},
		{"Müller, Jürgen", "Jürgen", "j.mueller"},
		{"Anna Schäfer", "Anna", "anna.schaefer"},
		{"Lukas Weiß", "Lukas", "lukas.weiss"},
		{"Sophie Köhler", "Sophie", "sophie.koehler"},
		{"Björn Groß", "Björn", "bjoern.gross"},
		{"Schulz & Söhne GmbH", "zusammen", "info"},
	},
	subjects: [numTopics][]string{
		topicBooking: {"Buchungsanfrage für den {date}", "Hibachi-Abend für {guests} Gäste"},
		topicPayment: {"Frage zur Zahlung", "Anzahlung für Buchung {ref}"},
		topicRefund:  {"Rückerstattung für Buchung {ref}", "Erstattung der Anzahlung"},
		topicInvoice: {"Rechnung {inv}", "Rechnung März {inv}"},
		topicInquiry: {"Anfrage für Hochzeit am {date}", "Catering-Anfrage für {guests} Personen"},
		topicChange:  {"Änderung der Gästezahl – {ref}", "Terminänderung {ref}"},
	},
	bodies: [numTopics][]string{
		topicBooking: {"Wir möchten für unsere {event} am {date} einen Hibachi-Koch buchen. Wir rechnen mit etwa {guests} Gästen.", "Könnten Sie uns bitte ein Angebot inklusive Anfahrt nach {city} schicken? Vielen Dank im Voraus."},
		topicPayment: {"Die Anzahlung von {amount} für die Buchung {ref} wurde zweimal abgelehnt. Können wir auch per Überweisung zahlen?"},
		topicRefund:  {"Leider müssen wir die Veranstaltung absagen. Die Anzahlung von {amount} für die Buchung {ref} hätten wir gerne zurück.", "Laut Ihren Bedingungen ist eine Stornierung bis sieben Tage vorher kostenfrei."},
		topicInvoice: {"Für unsere Buchhaltung benötigen wir eine Rechnung über {amount} mit ausgewiesener Mehrwertsteuer.", "Bitte adressieren Sie die Rechnung an unsere Firma und nennen Sie das Leistungsdatum ({date})."},
		topicInquiry: {"Wir planen eine {event} mit ungefähr {guests} Gästen in der Nähe von {city}.", "Gibt es auch vegetarische Gerichte? Zwei Gäste essen keine Meeresfrüchte."},
		topicChange:  {"Bei der Buchung {ref} ändert sich die Gästezahl: Es kommen {guests} Personen statt der angemeldeten.", "Wäre es möglich, am {date} schon um 18 Uhr anzufangen?"},
	},
	followUp: []string{"Vielen Dank für die schnelle Antwort!", "Das passt uns gut. Könnten Sie uns noch die Menüauswahl schicken?", "Ich wollte kurz nachfragen, ob Sie meine Nachricht erhalten haben."},
	greeting: []string{"Guten Tag,", "Hallo zusammen,", "Sehr geehrte Damen und Herren,"},
	closing:  []string{"Mit freundlichen Grüßen", "Viele Grüße", "Beste Grüße"},
	events:   []string{"Hochzeit", "Firmenfeier", "Geburtstagsfeier", "Sommerfest"},
	cities:   []string{"San José", "Sacramento", "Fremont", "Napa"},
	months:   [12]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"},
	dateFmt:  "{d}. {m} {y}",
	textRef:  "Buchungsnummer für Rückfragen",
	htmlRef:  "Unsere Referenz",
	wrote:    "Am {date} schrieb {name}:",
	currency: "€",
	files: [3][]string{
		kindPDF: {"Rechnung März {inv}.pdf", "Angebot {ref}.pdf", "Rechnung-{inv}.pdf"},
		kindPNG: {"Foto Terrasse.png", "Bildschirmfoto {n}.png"},
		kindCSV: {"Gästeliste.csv", "Zahlungen-{n}.csv"},
	},
}

var fr = &locale{
	tag:      "fr",
	weight:   8,
	charsets: []*charset{csUTF8, csUTF8, csLatin1, csLatin9, csWin1252},
	tz:       []int{60, 120, -5 * 60},
	domains:  []string{"orange.fr", "free.fr", "gmail.com", "laposte.net", "videotron.ca"},
	people: []person{
		{"Éloïse Dubois", "Éloïse", "eloise.dubois"},
		{"François Lefèvre", "François", "f.lefevre"},
		{"Lefèvre, François", "François", "francois.lefevre"},
		{"Chloé Martin", "Chloé", "chloe.martin"},
		{"Amélie Girard", "Amélie", "amelie.girard"},
		{"Jérôme Roux", "Jérôme", "jerome.roux"},
	},
	subjects: [numTopics][]string{
		topicBooking: {"Réservation pour {guests} personnes", "Réservation du {date}"},
		topicPayment: {"Question sur le paiement", "Acompte pour la réservation {ref}"},
		topicRefund:  {"Demande de remboursement – réservation {ref}", "Remboursement de l'acompte"},
		topicInvoice: {"Facture n° {inv}", "Demande de facture détaillée"},
		topicInquiry: {"Demande de devis pour un mariage", "Traiteur hibachi pour {guests} invités"},
		topicChange:  {"Modification du nombre d'invités", "Changement d'horaire – {ref}"},
	},
	bodies: [numTopics][]string{
		topicBooking: {"Nous souhaitons réserver un chef hibachi pour notre {event} le {date}. Nous serons environ {guests} invités.", "Pourriez-vous m'envoyer un devis détaillé, frais de déplacement à {city} compris ? Merci d'avance."},
		topicPayment: {"Le paiement de l'acompte de {amount} pour la réservation {ref} a été refusé deux fois. Puis-je payer par virement ?"},
		topicRefund:  {"Nous avons dû annuler l'événement. Pourriez-vous rembourser l'acompte de {amount} versé pour la réservation {ref} ?", "Selon vos conditions, l'annulation est gratuite jusqu'à sept jours avant."},
		topicInvoice: {"Notre service comptable a besoin d'une facture détaillée de {amount} avec le numéro de TVA.", "Merci d'indiquer la date de la prestation ({date}) sur la facture."},
		topicInquiry: {"Nous organisons un {event} pour environ {guests} personnes près de {city}.", "Est-ce que vous proposez des plats végétariens ? Deux invités sont allergiques aux crustacés."},
		topicChange:  {"Pour la réservation {ref}, nous serons finalement {guests} personnes.", "Serait-il possible de commencer à 18 h 30 le {date} ?"},
	},
	followUp: []string{"Merci pour votre réponse rapide !", "Cela nous convient. Pourriez-vous aussi m'envoyer les menus ?", "Je me permets de vous relancer, je n'ai pas encore reçu de réponse."},
	greeting: []string{"Bonjour,", "Madame, Monsieur,", "Bonsoir,"},
	closing:  []string{"Cordialement,", "Bien à vous,", "Merci beaucoup,"},
	events:   []string{"mariage", "anniversaire", "dîner d'entreprise", "baptême"},
	cities:   []string{"San José", "Sacramento", "Fremont", "Napa"},
	months:   [12]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"},
	dateFmt:  "{d} {m} {y}",
	textRef:  "Numéro de réservation à rappeler",
	htmlRef:  "Notre référence",
	wrote:    "Le {date}, {name} a écrit :",
	currency: "€",
	files: [3][]string{
		kindPDF: {"Facture n°{inv}.pdf", "Devis mariage {ref}.pdf"},
		kindPNG: {"Photo de la salle.png", "Capture d’écran {n}.png"},
		kindCSV: {"liste des invités.csv"},
	},
}

var es = &locale{
	tag:      "es",
	weight:   6,
	charsets: []*charset{csUTF8, csUTF8, csLatin1, csWin1252},
	tz:       []int{-6 * 60, -5 * 60, 60},
	domains:  []string{"gmail.com", "hotmail.es", "yahoo.com.mx", "telefonica.net"},
	people: []person{
		{"José Martínez", "José", "jose.martinez"},
		{"María Fernández", "María", "maria.fernandez"},
		{"Iñigo Núñez", "Iñigo", "inigo.nunez"},
		{"Lucía Gómez", "Lucía", "lucia.gomez"},
		{"Martínez, José Luis", "José Luis", "jl.martinez"},
	},
	subjects: [numTopics][]string{
		topicBooking: {"Reserva para {guests} personas", "Reserva para el {date}"},
		topicPayment: {"Pregunta sobre el pago", "Depósito de la reserva {ref}"},
		topicRefund:  {"Solicitud de reembolso – reserva {ref}", "¿Cuándo llega mi reembolso?"},
		topicInvoice: {"Factura nº {inv}", "Solicitud de factura"},
		topicInquiry: {"Cotización para evento de {guests} personas", "Información sobre catering para boda"},
		topicChange:  {"Cambio en el número de invitados", "Cambio de horario – {ref}"},
	},
	bodies: [numTopics][]string{
		topicBooking: {"Queremos contratar un chef hibachi para nuestra {event} el {date}. Seremos unas {guests} personas.", "¿Podrían enviarme una cotización con el costo de traslado a {city}? ¡Muchas gracias!"},
		topicPayment: {"El pago del depósito de {amount} para la reserva {ref} fue rechazado dos veces. ¿Puedo pagar por transferencia?"},
		topicRefund:  {"Tuvimos que cancelar el evento. ¿Cuándo recibiré el reembolso del depósito de {amount} de la reserva {ref}?"},
		topicInvoice: {"Nuestro departamento de contabilidad necesita una factura detallada por {amount} con el número fiscal."},
		topicInquiry: {"Estamos organizando una {event} para unas {guests} personas cerca de {city}.", "¿Tienen opciones vegetarianas? Dos invitados no comen mariscos."},
		topicChange:  {"Para la reserva {ref} seremos finalmente {guests} personas.", "¿Sería posible empezar a las 18:30 el {date}?"},
	},
	followUp: []string{"¡Gracias por la rápida respuesta!", "Nos parece bien. ¿Podrían enviarnos también las opciones de menú?", "Les escribo de nuevo porque todavía no he recibido respuesta."},
	greeting: []string{"Hola,", "Buenos días,", "Estimados señores:"},
	closing:  []string{"Saludos cordiales,", "Un saludo,", "Muchas gracias,"},
	events:   []string{"boda", "fiesta de cumpleaños", "cena de empresa", "quinceañera"},
	cities:   []string{"San José", "Sacramento", "Fremont", "Napa"},
	months:   [12]string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"},
	dateFmt:  "{d} de {m} de {y}",
	textRef:  "Número de reserva para consultas",
	htmlRef:  "Nuestra referencia",
	wrote:    "El {date}, {name} escribió:",
	currency: "$",
	files: [3][]string{
		kindPDF: {"Factura nº {inv}.pdf", "Cotización {ref}.pdf"},
		kindPNG: {"Foto del jardín.png"},
		kindCSV: {"lista de invitados.csv"},
	},
}

var ru = &locale{
	tag:      "ru",
	weight:   7,
	charsets: []*charset{csKOI8R, csKOI8R, csKOI8R, csUTF8},
	tz:       []int{3 * 60},
	domains:  []string{"yandex.ru", "mail.ru", "rambler.ru", "gmail.com"},
	people: []person{
		{"Анна Иванова", "Анна", "anna.ivanova"},
		{"Дмитрий Смирнов", "Дмитрий", "d.smirnov"},
		{"Ольга Кузнецова", "Ольга", "olga.kuznetsova"},
		{"Сергей Попов", "Сергей", "sergey.popov"},
		{"Фёдор Соколов", "Фёдор", "fedor.sokolov"},
		{"Иванова, Анна", "Анна", "a.ivanova"},
	},
	subjects: [numTopics][]string{
		topicBooking: {"Заказ кейтеринга на {date}", "Бронь на {guests} гостей"},
		topicPayment: {"Вопрос об оплате", "Предоплата по брони {ref}"},
		topicRefund:  {"Возврат предоплаты по брони {ref}", "Возврат средств"},
		topicInvoice: {"Счёт {inv}", "Нужен счёт для бухгалтерии"},
		topicInquiry: {"Запрос на банкет для {guests} гостей", "Вопрос о кейтеринге на свадьбу"},
		topicChange:  {"Изменение количества гостей", "Перенос брони {ref}"},
	},
	bodies: [numTopics][]string{
		topicBooking: {"Мы хотим заказать шеф-повара хибачи на {event} {date}. Будет примерно {guests} гостей.", "Пришлите, пожалуйста, смету с учётом выезда в {city}. Заранее спасибо."},
		topicPayment: {"Оплата предоплаты {amount} по брони {ref} дважды не прошла. Можно ли оплатить переводом?"},
		topicRefund:  {"К сожалению, мероприятие отменилось. Верните, пожалуйста, предоплату {amount} по брони {ref}."},
		topicInvoice: {"Для бухгалтерии нужен подробный счёт на {amount} с реквизитами компании."},
		topicInquiry: {"Мы планируем {event} примерно на {guests} человек недалеко от {city}.", "Есть ли у вас вегетарианское меню? Двое гостей не едят морепродукты."},
		topicChange:  {"По брони {ref} гостей будет {guests}, а не как договаривались.", "Можно ли начать {date} в 18:30?"},
	},
	followUp: []string{"Спасибо за быстрый ответ!", "Нас всё устраивает. Пришлите, пожалуйста, варианты меню.", "Напоминаю о своём письме, ответа пока нет."},
	greeting: []string{"Здравствуйте!", "Добрый день!"},
	closing:  []string{"С уважением,", "Спасибо,"},
	events:   []string{"свадьбу", "день рождения", "корпоратив", "юбилей"},
	cities:   []string{"Сан-Хосе", "Сакраменто", "Фримонт"},
	months:   [12]string{"января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября", "декабря"},
	dateFmt:  "{d} {m} {y}",
	textRef:  "Номер брони для справок",
	htmlRef:  "Наш номер",
	wrote:    "{date}, {name} написал(а):",
	currency: "$",
	files: [3][]string{
		kindPDF: {"Счёт {inv}.pdf", "Смета {ref}.pdf"},
		kindPNG: {"Фото площадки.png"},
		kindCSV: {"Список гостей.csv"},
	},
}

var ja = &locale{
	tag:      "ja",
	weight:   7,
	charsets: []*charset{csShiftJIS, csShiftJIS, csShiftJIS, csUTF8},
	tz:       []int{9 * 60},
	domains:  []string{"yahoo.co.jp", "docomo.ne.jp", "gmail.com", "nifty.com"},
	people: []person{
		{"山田 太郎", "山田様", "taro.yamada"},
		{"佐藤 花子", "佐藤様", "hanako.sato"},
		{"鈴木 一郎", "鈴木様", "ichiro.suzuki"},
		{"高橋 美咲", "高橋様", "misaki.takahashi"},
		{"田中 健", "田中様", "ken.tanaka"},
	},
	subjects: [numTopics][]string{
		topicBooking: {"ご予約の確認 {ref}", "{date}の出張シェフ予約について"},
		topicPayment: {"お支払いについて", "前金のお支払い方法"},
		topicRefund:  {"返金のお願い（予約番号 {ref}）", "キャンセルと返金について"},
		topicInvoice: {"請求書 {inv} の発行依頼", "領収書のお願い"},
		topicInquiry: {"ケータリングのお問い合わせ", "{guests}名のパーティーについて"},
		topicChange:  {"人数変更のお願い", "開始時間の変更（{ref}）"},
	},
	bodies: [numTopics][]string{
		topicBooking: {"{date}の{event}で鉄板焼きケータリングをお願いしたいと考えております。人数は約{guests}名です。", "{city}までの出張費を含めたお見積もりをお送りいただけますでしょうか。"},
		topicPayment: {"予約番号{ref}の前金{amount}のカード決済が二回失敗しました。銀行振込でのお支払いは可能でしょうか。"},
		topicRefund:  {"誠に恐縮ですが、イベントが中止となりました。予約番号{ref}の前金{amount}の返金をお願いいたします。"},
		topicInvoice: {"経理担当より、会社宛ての明細付き請求書（{amount}）を求められております。"},
		topicInquiry: {"{city}の近くで約{guests}名の{event}を予定しております。", "ベジタリアン向けのメニューはありますか。甲殻類アレルギーの方が二名おります。"},
		topicChange:  {"予約番号{ref}の人数が{guests}名に変更となりました。", "{date}の開始時間を十八時半に変更できますでしょうか。"},
	},
	followUp: []string{"早速のご返信ありがとうございます。", "その内容で問題ございません。メニューの一覧もお送りいただけますか。", "先日の件、ご確認いただけましたでしょうか。"},
	greeting: []string{"お世話になっております。", "はじめてご連絡いたします。"},
	closing:  []string{"よろしくお願いいたします。", "何卒よろしくお願い申し上げます。"},
	events:   []string{"結婚式", "社内パーティー", "誕生日会", "忘年会"},
	cities:   []string{"サンノゼ", "サクラメント", "フリーモント"},
	months:   [12]string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"},
	dateFmt:  "{y}年{m}月{d}日",
	textRef:  "お問い合わせ用予約番号",
	htmlRef:  "弊社参照番号",
	wrote:    "{date} {name} さんは書きました:",
	currency: "$",
	files: [3][]string{
		kindPDF: {"請求書_{inv}.pdf", "お見積書_{ref}.pdf"},
		kindPNG: {"会場の写真.png", "スクリーンショット {n}.png"},
		kindCSV: {"参加者リスト.csv"},
	},
}

// staffReplies are what the business answers, always in English.
var staffReplies = [numTopics][]string{
	topicBooking: {
		"Thanks for choosing MyHibachi! We have a chef available on {date} and have put a tentative hold on it under booking {ref}.",
		"To confirm, please pay the {amount} deposit using the link in your booking portal. The balance is due on the day of the event.",
	},
	topicPayment: {
		"I checked booking {ref} and I can see two declined attempts from our processor. This usually happens when the bank flags an out-of-state charge.",
		"You can also pay by Zelle to payments@myhibachichef.com; please put {ref} in the memo so we can match it.",
	},
	topicRefund: {
		"I'm sorry to hear that your plans changed. I have issued a refund of {amount} for booking {ref}; it should appear on your statement within 5–10 business days.",
	},
	topicInvoice: {
		"Please find the itemized invoice {inv} for booking {ref} attached. Let me know if the billing address needs to change.",
	},
	topicInquiry: {
		"Thank you for your interest in MyHibachi catering! For {guests} guests our package starts at $60 per adult, with a $600 minimum.",
		"Vegetarian, vegan and gluten-free options are available at no extra charge; just tell the chef on arrival.",
	},
	topicChange: {
		"No problem, I have updated booking {ref}. The new total will be reflected on your next invoice.",
		"The chef will arrive 30 minutes before the start time to set up the grill.",
	},
}

var staffClosers = []string{"If you have any other questions, just reply to this email.", "Have a great day!", "We look forward to cooking for you."}

var forwardNotes = []string{"Forwarding this to you, please take a look.", "FYI – see the customer's message below.", "Can you handle this one? Thanks!"}

// inbox is one of the business's addresses; topics go to the matching one.
type inbox struct {
	addr  string
	names []string // display names staff reply with; "" means a bare address
}

var (
	inboxCS       = inbox{"cs@myhibachichef.com", []string{"MyHibachi Customer Service", "MyHibachi Support", "Sarah at MyHibachi", ""}}
	inboxPayments = inbox{"payments@myhibachichef.com", []string{"MyHibachi Payments", "MyHibachi Billing"}}
	inboxEvents   = inbox{"events@myhibachichef.com", []string{"MyHibachi Events", "Kenji | MyHibachi Events"}}
	colleagues    = []person{{"Accounting", "", "accounting"}, {"Chef Hiro", "", "hiro"}, {"Tanaka, Kenji", "", "kenji"}}
)

func topicInbox(t topic) []inbox {
	switch t {
	case topicPayment, topicRefund, topicInvoice:
		return []inbox{inboxPayments, inboxPayments, inboxCS}
	case topicInquiry:
		return []inbox{inboxEvents, inboxCS}
	default:
		return []inbox{inboxCS, inboxCS, inboxEvents}
	}
}
