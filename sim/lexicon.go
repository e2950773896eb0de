package sim

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// The simulated model understands requests in the languages the user
// writes in: words of French, Spanish, German, Italian and Portuguese are
// read as the English words tools are usually named and described with
// ("météo" as weather), so a tool is chosen and its arguments filled from a
// prompt in any of them.

// synonyms maps a concept (an English word) to its words in other
// languages, accents removed.
var synonyms = map[string][]string{
	"weather":     {"meteo", "temps", "tiempo", "clima", "wetter", "tempo"},
	"temperature": {"temperatura", "temperatur"},
	"search":      {"chercher", "cherche", "cherchez", "rechercher", "recherche", "trouver", "trouve", "buscar", "busca", "busque", "suchen", "suche", "cercare", "cerca", "procurar", "procure"},
	"flight":      {"vol", "vols", "vuelo", "vuelos", "flug", "fluge", "volo", "voli", "voo", "voos"},
	"book":        {"reserver", "reserve", "reservez", "reservation", "reservar", "reserva", "buchen", "buche", "prenotare", "prenota"},
	"hotel":       {"hotel", "hoteles", "hotels", "albergo"},
	"night":       {"nuit", "nuits", "noche", "noches", "nacht", "nachte", "notte", "notti", "noite", "noites"},
	"convert":     {"convertir", "convertis", "convertissez", "conversion", "umrechnen", "umrechnung", "convertire", "converter"},
	"currency":    {"devise", "devises", "monnaie", "moneda", "wahrung", "valuta", "moeda"},
	"price":       {"prix", "precio", "preis", "prezzo", "preco"},
	"amount":      {"montant", "somme", "monto", "cantidad", "betrag", "importo", "quantia"},
	"create":      {"creer", "cree", "creez", "crear", "crea", "erstellen", "erstelle", "anlegen", "creare", "criar"},
	"user":        {"utilisateur", "utilisatrice", "usuario", "benutzer", "nutzer", "utente"},
	"account":     {"compte", "cuenta", "konto", "conto", "conta"},
	"email":       {"courriel", "mail", "correo", "posta"},
	"send":        {"envoyer", "envoie", "envoyez", "enviar", "envia", "senden", "sende", "inviare", "invia"},
	"city":        {"ville", "ciudad", "stadt", "citta", "cidade"},
	"french":      {"francais", "francaise", "frances", "francesa", "franzosisch", "francese"},
	"english":     {"anglais", "anglaise", "ingles", "inglesa", "englisch", "inglese"},
	"german":      {"allemand", "allemande", "aleman", "alemana", "deutsch", "tedesco", "alemao"},
	"spanish":     {"espagnol", "espagnole", "espanol", "spanisch", "spagnolo", "espanhol"},
	"newsletter":  {"infolettre", "boletin"},
	"calculate":   {"calculer", "calcule", "calcular", "berechnen", "calcolare"},
	"time":        {"heure", "hora", "uhrzeit", "ora"},
	"stock":       {"bourse", "accion", "aktie", "azione"},
	"order":       {"commande", "commander", "pedido", "bestellung", "ordine"},
}

// concept reads each non-English word as its English concept.
var concept = func() map[string]string {
	m := map[string]string{}
	for c, ws := range synonyms {
		for _, w := range ws {
			m[w] = c
		}
	}
	return m
}()

// fold lower-cases and removes accents: "Météo" -> "meteo".
func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(strings.ToLower(s)) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// promptWords are a prompt's words, folded, with each one's English concept
// added.
func promptWords(prompt string) map[string]bool {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(fold(prompt), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		words[w] = true
		if c, ok := concept[w]; ok {
			words[c] = true
		}
	}
	return words
}

// variants are the words that may stand for an English word in a prompt:
// itself, its plural, and its translations.
func variants(word string) []string {
	out := []string{word, word + "s"}
	return append(out, synonyms[word]...)
}

// Prepositions before a place, an origin, a destination, a name, and the
// words that negate what follows, in the languages above.
const (
	placePreps  = `in|at|for|to|à|a|au|aux|en|dans|pour|sur|nach|bei|im|em|no|na|para`
	fromPreps   = `from|de|du|des|depuis|desde|von|aus|da|dal`
	toPreps     = `to|à|a|au|aux|vers|pour|jusqu'à|hacia|hasta|nach|zu|para|per`
	namedWords  = `named|called|nommé|nommée|appelé|appelée|llamado|llamada|namens|chiamato|chiamata|chamado|chamada`
	negateWords = `not|no|without|pas|sans|ni|sin|kein|keine|nicht|ohne|senza|non|sem|não`
)
